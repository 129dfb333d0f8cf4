import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, rmSync, writeFileSync } from 'node:fs'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../src/app.js'
import { tempDirs, testConfig, type TempDirs } from './support/config.js'
import { ISO_MS, sessionBody } from './support/requests.js'

const SECRET = 'correct-horse-battery-staple'
const ID = '550e8400-e29b-41d4-a716-446655440000'
const auth = { authorization: `Bearer ${SECRET}` }

function assertErrorBody (res: LightMyRequestResponse, status: number, error?: RegExp) {
  assert.equal(res.statusCode, status, res.body)
  assert.match(String(res.headers['content-type']), /^application\/json/)
  const body = res.json()
  assert.equal(typeof body.error, 'string')
  assert.ok(body.error.length > 0)
  assert.match(body.timestamp, ISO_MS)
  assert.deepEqual(Object.keys(body).filter(k => !['error', 'details', 'timestamp'].includes(k)), [])
  if (error) assert.match(body.error, error)
  return body as { error: string, details?: { field?: string, reason?: string }, timestamp: string }
}

describe('HTTP contract with a shared secret', () => {
  let dirs: TempDirs
  let app: FastifyInstance
  before(async () => {
    dirs = tempDirs()
    // No engine binary: the contract's errors must hold while the engine is unavailable.
    app = await buildApp(testConfig(dirs, { OPENCODE_SHARED_SECRET: SECRET, OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    await app.ready()
  })
  after(async () => {
    await app.close()
    dirs.cleanup()
  })

  test('liveness is 200 {"status":"ok"} on both paths, without auth', async () => {
    for (const url of ['/healthz', '/health']) {
      const res = await app.inject({ url })
      assert.equal(res.statusCode, 200)
      assert.deepEqual(res.json(), { status: 'ok' })
    }
  })

  test('readiness is 503 with a reason while the engine is unavailable', async () => {
    const res = await app.inject({ url: '/ready' })
    assert.equal(res.statusCode, 503)
    const body = res.json()
    assert.equal(body.status, 'not ready')
    assert.match(body.error, /engine/)
  })

  test('unknown routes are 404 in the error shape', async () => {
    assertErrorBody(await app.inject({ url: '/nope' }), 404, /not found/)
    assertErrorBody(await app.inject({ method: 'PUT', url: '/sessions' }), 404)
  })

  describe('auth', () => {
    const routes = [
      { method: 'POST' as const, url: '/sessions', payload: sessionBody() },
      { method: 'GET' as const, url: `/sessions/${ID}/status` },
      { method: 'GET' as const, url: `/sessions/${ID}/stream` },
      { method: 'DELETE' as const, url: `/sessions/${ID}` },
    ]
    for (const route of routes) {
      test(`${route.method} ${route.url.replace(ID, ':id')} needs the bearer token`, async () => {
        for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Bearer ${SECRET}x` }, { authorization: SECRET }, { authorization: `Basic ${SECRET}` }]) {
          const res = await app.inject({ ...route, headers })
          assertErrorBody(res, 401)
          assert.equal(res.headers['www-authenticate'], 'Bearer')
        }
        const res = await app.inject({ ...route, headers: auth })
        assert.notEqual(res.statusCode, 401)
      })
    }

    test('auth is checked before the body is parsed', async () => {
      const res = await app.inject({ method: 'POST', url: '/sessions', headers: { 'content-type': 'application/json' }, payload: '{bad' })
      assertErrorBody(res, 401)
    })

    test('probes, docs and the OpenAPI document stay open', async () => {
      for (const url of ['/healthz', '/health', '/ready', '/openapi.json', '/docs']) {
        const res = await app.inject({ url })
        assert.notEqual(res.statusCode, 401, url)
        assert.ok(res.statusCode < 500 || url === '/ready', url)
      }
    })
  })

  describe('POST /sessions input errors', () => {
    const post = (payload: unknown, headers: Record<string, string> = {}) =>
      app.inject({ method: 'POST', url: '/sessions', headers: { ...auth, ...headers }, payload: payload as string })

    const cases: Array<[string, unknown, string, RegExp]> = [
      ['missing session_id', { ...sessionBody(), session_id: undefined }, 'session_id', /required/],
      ['bad UUID', sessionBody({ session_id: 'not-a-uuid' }), 'session_id', /valid UUID/],
      ['UUID without dashes', sessionBody({ session_id: '550e8400e29b41d4a716446655440000' }), 'session_id', /valid UUID/],
      ['empty prompt', sessionBody({ prompt: '' }), 'prompt', /empty/],
      ['whitespace prompt', sessionBody({ prompt: ' \n\t ' }), 'prompt', /empty/],
      ['prompt too long', sessionBody({ prompt: 'x'.repeat(200_001) }), 'prompt', /at most/],
      ['prompt of wrong type', { ...sessionBody(), prompt: 42 }, 'prompt', /string/],
      ['missing model_config', { ...sessionBody(), model_config: undefined }, 'model_config', /required/],
      ['unknown provider', sessionBody({}, { provider: 'acme' as never }), 'model_config.provider', /one of: openai, anthropic, google, openai-compatible/],
      ['empty model', sessionBody({}, { model: '' }), 'model_config.model', /empty/],
      ['empty api_key', sessionBody({}, { api_key: '' }), 'model_config.api_key', /empty/],
      ['temperature above 2', sessionBody({}, { temperature: 2.5 }), 'model_config.temperature', /at most 2/],
      ['negative temperature', sessionBody({}, { temperature: -0.1 }), 'model_config.temperature', /at least 0/],
      ['temperature as string', sessionBody({}, { temperature: '0.5' as never }), 'model_config.temperature', /number/],
      ['fractional max_tokens', sessionBody({}, { max_tokens: 10.5 }), 'model_config.max_tokens', /integer/],
      ['zero max_tokens', sessionBody({}, { max_tokens: 0 }), 'model_config.max_tokens', /at least 1/],
      ['unknown tool', sessionBody({}, { enabled_tools: ['read', 'rm' as never] }), 'model_config.enabled_tools[1]', /one of: read/],
      ['duplicate tool', sessionBody({}, { enabled_tools: ['read', 'read'] }), 'model_config.enabled_tools', /duplicates/],
      ['unknown top-level field', { ...sessionBody(), sytem_prompt: 'typo' }, 'sytem_prompt', /not a known field/],
      ['unknown nested field', sessionBody({}, { temprature: 1 } as never), 'model_config.temprature', /not a known field/],
      ['openai-compatible without endpoint', sessionBody({}, { provider: 'openai-compatible' }), 'model_config.api_endpoint', /required/],
      ['file: endpoint', sessionBody({}, { api_endpoint: 'file:///etc/passwd' }), 'model_config.api_endpoint', /http or https/],
      ['relative endpoint', sessionBody({}, { api_endpoint: '/v1' }), 'model_config.api_endpoint', /absolute/],
      ['endpoint with credentials', sessionBody({}, { api_endpoint: 'https://u:p@example.com/v1' }), 'model_config.api_endpoint', /credentials/],
      ['array body', [], 'body', /object/],
    ]
    for (const [name, payload, field, reason] of cases) {
      test(`${name} → 400 naming ${field}`, async () => {
        const body = assertErrorBody(await post(payload), 400)
        assert.equal(body.details?.field, field)
        assert.match(String(body.details?.reason), reason)
        assert.ok(body.error.includes(field), body.error)
      })
    }

    test('null for an optional field means absent', async () => {
      const res = await post({ ...sessionBody({}, { api_endpoint: null, model_version: null }), system_prompt: null })
      assert.notEqual(res.statusCode, 400, res.body)
    })

    test('malformed JSON → 400', async () => {
      assertErrorBody(await post('{"session_id": ', { 'content-type': 'application/json' }), 400, /not valid JSON/)
    })

    test('empty body → 400', async () => {
      assertErrorBody(await post('', { 'content-type': 'application/json' }), 400, /empty/)
    })

    test('wrong content type → 415', async () => {
      assertErrorBody(await post('prompt=hi', { 'content-type': 'application/x-www-form-urlencoded' }), 415, /application\/json/)
      assertErrorBody(await post('hi', { 'content-type': 'text/plain' }), 415)
    })

    test('body over the limit → 413', async () => {
      const huge = JSON.stringify(sessionBody({ prompt: 'x'.repeat(2 * 1024 * 1024) }))
      assertErrorBody(await post(huge, { 'content-type': 'application/json' }), 413, /too large/)
    })

    test('a valid request while the engine is unavailable → 503 with Retry-After, never a fake success', async () => {
      const res = await post(sessionBody())
      assertErrorBody(res, 503)
      assert.match(String(res.headers['retry-after']), /^\d+$/)
    })
  })

  describe('session routes', () => {
    test('a bad session id → 400 naming it', async () => {
      for (const url of ['/sessions/abc/status', '/sessions/abc', '/sessions/abc/stream']) {
        const method = url === '/sessions/abc' ? 'DELETE' : 'GET'
        const body = assertErrorBody(await app.inject({ method, url, headers: auth }), 400)
        assert.equal(body.details?.field, 'sessionId')
      }
    })

    test('an unknown session → 404', async () => {
      assertErrorBody(await app.inject({ url: `/sessions/${ID}/status`, headers: auth }), 404, /not found/)
      assertErrorBody(await app.inject({ method: 'DELETE', url: `/sessions/${ID}`, headers: auth }), 404, /not found/)
      assertErrorBody(await app.inject({ url: `/sessions/${ID}/stream`, headers: auth }), 404, /not found/)
    })

    test('the stream refuses an Accept that excludes text/event-stream → 406', async () => {
      for (const accept of ['application/json', 'text/html, application/xml', 'text/event-stream;q=0']) {
        assertErrorBody(await app.inject({ url: `/sessions/${ID}/stream`, headers: { ...auth, accept } }), 406)
      }
    })

    test('a bad Last-Event-ID → 400', async () => {
      const body = assertErrorBody(await app.inject({ url: `/sessions/${ID}/stream`, headers: { ...auth, 'last-event-id': 'abc' } }), 400)
      assert.equal(body.details?.field, 'Last-Event-ID')
      const q = assertErrorBody(await app.inject({ url: `/sessions/${ID}/stream?last_event_id=-1`, headers: auth }), 400)
      assert.equal(q.details?.field, 'last_event_id')
    })
  })

  test('/metrics is Prometheus text, open without the token', async () => {
    await app.inject({ url: '/healthz' })
    const res = await app.inject({ url: '/metrics' })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/plain/)
    for (const name of ['opencode_server_sessions{state="running"} 0', 'opencode_server_active_streams 0', 'opencode_server_engine_restarts_total', 'opencode_server_http_request_duration_seconds_bucket', 'opencode_server_slow_clients_disconnected_total', 'opencode_server_process_resident_memory_bytes']) {
      assert.ok(res.body.includes(name), name)
    }
    assert.match(res.body, /opencode_server_http_request_duration_seconds_count\{method="GET",route="\/healthz",status_code="200"\} [1-9]/)
  })

  test('every response carries a request id, and an incoming one is kept', async () => {
    const res = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'abc-123' } })
    assert.equal(res.headers['x-request-id'], 'abc-123')
    const first = (await app.inject({ url: '/healthz' })).headers['x-request-id']
    const second = (await app.inject({ url: '/sessions/00000000-0000-4000-8000-000000000000/status', headers: auth })).headers['x-request-id']
    assert.match(String(first), /^[0-9a-f]{8}-[1-9][0-9]*$/)
    assert.match(String(second), /^[0-9a-f]{8}-[1-9][0-9]*$/)
    assert.notEqual(first, second)
  })
})

describe('HTTP contract without a shared secret', () => {
  let dirs: TempDirs
  let app: FastifyInstance
  before(async () => {
    dirs = tempDirs()
    app = await buildApp(testConfig(dirs, { OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    await app.ready()
  })
  after(async () => {
    await app.close()
    dirs.cleanup()
  })

  test('session routes need no token', async () => {
    const res = await app.inject({ url: `/sessions/${ID}/status` })
    assertErrorBody(res, 404)
    assert.equal(res.headers['www-authenticate'], undefined)
  })

  test('readiness reports a missing workspace', async () => {
    rmSync(dirs.workspaceDir, { recursive: true })
    const res = await app.inject({ url: '/ready' })
    assert.deepEqual(res.json(), { status: 'not ready', error: 'workspace directory does not exist' })
  })

  test('readiness reports a workspace that is not a writable directory', async () => {
    writeFileSync(dirs.workspaceDir, 'a file, not a directory')
    chmodSync(dirs.workspaceDir, 0o444)
    const res = await app.inject({ url: '/ready' })
    assert.equal(res.statusCode, 503)
    assert.match(res.json().error, /workspace/)
  })
})

describe('malformed HTTP on a real socket', () => {
  test('gets the contract\'s error body from the socket handler', async () => {
    const dirs = tempDirs()
    const app = await buildApp(testConfig(dirs, { OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      const { port } = app.server.address() as import('node:net').AddressInfo
      const net = await import('node:net')
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.write('GARBAGE / HTTP/1.1\r\n\r\n'))
        let data = ''
        socket.on('data', (chunk) => { data += chunk.toString() })
        socket.on('close', () => resolve(data))
        socket.on('error', reject)
      })
      assert.match(answer, /^HTTP\/1\.1 400 /)
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))
      assert.equal(body.error, 'Malformed HTTP request')
      assert.match(body.timestamp, ISO_MS)
    } finally {
      await app.close()
      dirs.cleanup()
    }
  })
})
