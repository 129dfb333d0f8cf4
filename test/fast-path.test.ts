import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import fc from 'fast-check'
import fastJson from 'fast-json-stringify'
import { buildApp } from '../src/app.js'
import { FastPath } from '../src/fast-path.js'
import { StatusBodies, sameJson, sameStatus } from '../src/status-bodies.js'
import { SessionStore, type SessionRecord } from '../src/sessions/store.js'
import { SessionStatus, type SessionStatusType } from '../schemas/session.js'
import { tempDirs, testConfig, type TempDirs } from './support/config.js'

const SECRET = 'fast-path-secret'
const ID = '6f9619ff-8b86-4d11-b42d-00c04fc964ff'
const auth = { authorization: `Bearer ${SECRET}` }

interface Raw { status: number, headers: http.IncomingHttpHeaders, body: string }

const agent = new http.Agent({ keepAlive: true })

function get (port: number, path: string, headers: http.OutgoingHttpHeaders = {}, method = 'GET', body?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

function record (): SessionRecord {
  return {
    session_id: ID,
    status: 'completed',
    progress: 100,
    created_at: '2026-12-01T10:00:00.000Z',
    started_at: '2026-12-01T10:00:00.120Z',
    updated_at: '2026-12-01T10:00:03.000Z',
    finished_at: '2026-12-01T10:00:03.000Z',
    cancelled_at: null,
    model: { provider: 'anthropic', model: 'claude-sonnet-4-5' },
    last_event_id: 12,
    final_message: 'Done: "quoted", \\ backslash, \u2028 and émoji 🎉',
    files_modified: ['a.txt', 'src/b.ts'],
    error: null,
    usage: { input_tokens: 1200, output_tokens: 345 },
    engine_session_id: 'ses_fast',
  }
}

describe('fast path for the polled routes', () => {
  let dirs: TempDirs
  let app: FastifyInstance
  let port: number
  /**
   * Requests Fastify answered (its onResponse hooks ran; the client is in this process, so a
   * response is never read before its hooks have run): the fast path's answers are not among them.
   */
  let routed = 0

  before(async () => {
    dirs = tempDirs()
    const store = new SessionStore(dirs.stateDir)
    store.init()
    store.save(record())
    app = await buildApp(testConfig(dirs, { OPENCODE_SHARED_SECRET: SECRET, OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    app.addHook('onResponse', (_request, _reply, done) => {
      routed++
      done()
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    port = (app.server.address() as AddressInfo).port
  })
  after(async () => {
    agent.destroy()
    await app.close()
    dirs.cleanup()
  })

  test('liveness and a known session\'s status are answered without Fastify, as Fastify answers them', async () => {
    for (const [url, headers] of [['/healthz', {}], ['/health', {}], [`/sessions/${ID}/status`, auth], [`/sessions/${ID.toUpperCase()}/status`, auth]] as const) {
      const before = routed
      const fast = await get(port, url, headers)
      assert.equal(routed, before, `${url} went through Fastify`)
      const viaFastify = await app.inject({ url, headers })
      assert.equal(routed, before + 1)
      assert.equal(fast.status, 200)
      assert.equal(fast.status, viaFastify.statusCode, url)
      assert.equal(fast.body, viaFastify.body, url)
      assert.equal(fast.headers['content-type'], viaFastify.headers['content-type'])
      assert.equal(fast.headers['content-length'], viaFastify.headers['content-length'])
      assert.equal(fast.headers['keep-alive'], 'timeout=72', 'Fastify\'s keep-alive timeout is kept')
      assert.match(String(fast.headers['x-request-id']), /^[0-9a-f]{8}-\d+$/)
    }
    const status = JSON.parse((await get(port, `/sessions/${ID}/status`, auth)).body) as SessionStatusType
    assert.deepEqual(status.usage, { input_tokens: 1200, output_tokens: 345 })
    assert.equal(status.stream_url, `/sessions/${ID}/stream`)
  })

  test('request ids: a caller\'s id is echoed; generated ids never repeat across both paths', async () => {
    assert.equal((await get(port, '/healthz', { 'x-request-id': 'trace-42' })).headers['x-request-id'], 'trace-42')
    const ids = new Set<string>()
    for (let i = 0; i < 5; i++) {
      ids.add(String((await get(port, '/healthz')).headers['x-request-id']))
      ids.add(String((await get(port, '/ready')).headers['x-request-id']))
    }
    assert.equal(ids.size, 10)
  })

  test('everything else goes to Fastify: auth, unknown sessions, bad ids, other methods, queries, bodies', async () => {
    const cases: Array<[string, string, http.OutgoingHttpHeaders, number, string?]> = [
      ['GET', `/sessions/${ID}/status`, {}, 401],
      ['GET', `/sessions/${ID}/status`, { authorization: 'Bearer wrong' }, 401],
      ['GET', '/sessions/11111111-2222-4333-8444-555555555555/status', auth, 404],
      ['GET', '/sessions/not-a-uuid-not-a-uuid-not-a-uuid-1234/status', auth, 400],
      ['HEAD', '/healthz', {}, 200],
      ['GET', '/healthz?probe=1', {}, 200],
      ['GET', '/healthz/', {}, 200],
      ['GET', '/healthz', { 'content-type': 'application/json', 'content-length': '2' }, 200, '{}'],
      ['POST', '/healthz', {}, 404],
    ]
    for (const [method, url, headers, expected, body] of cases) {
      const before = routed
      const res = await get(port, url, headers, method, body)
      assert.equal(res.status, expected, `${method} ${url}: ${res.body}`)
      assert.equal(routed, before + 1, `${method} ${url} did not reach Fastify`)
      if (expected === 401) assert.equal(res.headers['www-authenticate'], 'Bearer')
      if (expected >= 400) assert.equal(typeof JSON.parse(res.body).error, 'string')
    }
  })

  test('its answers are counted in the request-duration histogram', async () => {
    const count = async (route: string): Promise<number> => {
      const text = (await app.inject({ url: '/metrics' })).body
      const line = text.split('\n').find(l => l.startsWith('opencode_server_http_request_duration_seconds_count') && l.includes(`route="${route}"`) && l.includes('status_code="200"'))
      return line ? Number(line.split(' ').at(-1)) : 0
    }
    const healthz = await count('/healthz')
    const status = await count('/sessions/:sessionId/status')
    for (let i = 0; i < 3; i++) await get(port, '/healthz')
    await get(port, `/sessions/${ID}/status`, auth)
    assert.equal(await count('/healthz'), healthz + 3)
    assert.equal(await count('/sessions/:sessionId/status'), status + 1)
  })
})

describe('the fast path never costs the process', () => {
  test('a stored record that does not serialize gets Fastify\'s 500, and the server lives on', async () => {
    const dirs = tempDirs()
    const store = new SessionStore(dirs.stateDir)
    store.init()
    const broken = record() as Partial<SessionRecord>
    delete broken.usage // (written by another version, or by hand)
    store.save(broken as SessionRecord)
    const app = await buildApp(testConfig(dirs, { OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as AddressInfo).port
    try {
      const res = await get(port, `/sessions/${ID}/status`)
      assert.equal(res.status, 500)
      assert.equal(typeof JSON.parse(res.body).error, 'string')
      assert.equal((await get(port, '/healthz')).status, 200)
    } finally {
      agent.destroy()
      await app.close()
      dirs.cleanup()
    }
  })

  test('while later preClose hooks run (sessions ending), its answers already say connection: close, as Fastify\'s do', async () => {
    const dirs = tempDirs()
    const app = await buildApp(testConfig(dirs, { OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    let seen: Array<string | undefined> = []
    app.addHook('preClose', async () => {
      const port = (app.server.address() as AddressInfo).port
      seen = [(await get(port, '/healthz')).headers.connection, (await get(port, '/ready')).headers.connection]
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      await app.close()
      assert.deepEqual(seen, ['close', 'close'])
    } finally {
      agent.destroy()
      dirs.cleanup()
    }
  })
})

describe('closing with a request in flight', () => {
  test('a keep-alive connection whose request was in flight when closing began does not hold the server open', async () => {
    const dirs = tempDirs()
    const app = await buildApp(testConfig(dirs, { OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
    app.get('/slow', async () => {
      await new Promise(resolve => setTimeout(resolve, 300))
      return { slow: true }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as AddressInfo).port
    try {
      const answer = get(port, '/slow')
      await new Promise(resolve => setTimeout(resolve, 100))
      const started = Date.now()
      const closed = app.close().then(() => Date.now() - started)
      assert.equal((await answer).status, 200, 'the request in flight is answered')
      const ms = await Promise.race([closed, new Promise<number>(resolve => setTimeout(() => resolve(Infinity), 5000))])
      assert.ok(ms < 2000, `closed after ${ms} ms (Node alone waits for the 72 s keep-alive timeout)`)
    } finally {
      agent.destroy()
      await app.close()
      dirs.cleanup()
    }
  })
})

describe('FastPath on its own', () => {
  test('once closing, answers carry connection: close, like Fastify\'s while it closes', async () => {
    const fast = new FastPath({ requestId: () => 'id', observe: () => {}, secret: undefined })
    fast.constant('/x', { a: 1 })
    const server = http.createServer((_req, res) => { res.statusCode = 404; res.end() })
    fast.attach(server)
    assert.throws(() => fast.attach(http.createServer()), /expected Fastify's one request listener, found 0/)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as AddressInfo).port
    try {
      const open = await get(port, '/x')
      assert.equal(open.headers.connection, 'keep-alive')
      assert.equal(open.body, '{"a":1}')
      assert.equal((await get(port, '/y')).status, 404)
      fast.close()
      assert.equal((await get(port, '/x')).headers.connection, 'close')
    } finally {
      agent.destroy()
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  })
})

describe('StatusBodies', () => {
  const serialize = fastJson(SessionStatus)
  const base = (): SessionStatusType => ({ ...record(), stream_url: `/sessions/${ID}/stream` })

  test('a body is reused only while the status is unchanged, whatever changed and however', () => {
    const statusArb = fc.record({
      status: fc.constantFrom('pending', 'running', 'completed', 'failed', 'cancelled'),
      progress: fc.integer({ min: 0, max: 100 }),
      updated_at: fc.constantFrom('2026-12-01T10:00:03.000Z', '2026-12-01T10:00:03.001Z'),
      last_event_id: fc.integer({ min: 0, max: 3 }),
      final_message: fc.option(fc.constantFrom('a', 'b'), { nil: null }),
      files_modified: fc.array(fc.constantFrom('a.txt', 'b.txt'), { maxLength: 3 }),
      error: fc.option(fc.record({ code: fc.constantFrom('timeout', 'engine'), message: fc.constantFrom('x', 'y') }), { nil: null }),
      usage: fc.option(fc.record({ input_tokens: fc.integer({ min: 0, max: 2 }), output_tokens: fc.integer({ min: 0, max: 2 }) }), { nil: null }),
    })
    fc.assert(fc.property(fc.array(statusArb, { minLength: 1, maxLength: 12 }), changes => {
      const bodies = new StatusBodies(serialize)
      const status = base()
      for (const change of changes) {
        // Nested objects changed in place, as a live session's are: the cache must not share them.
        const { usage, files_modified: files, ...flat } = change
        Object.assign(status, flat)
        if (usage && status.usage) Object.assign(status.usage, usage)
        else status.usage = usage
        status.files_modified.splice(0, status.files_modified.length, ...files)
        assert.equal(bodies.body(status).toString(), serialize(status))
      }
    }))
  })

  test('nested objects changed in place after caching are seen', () => {
    const bodies = new StatusBodies(serialize)
    const status = base()
    const first = bodies.body(status)
    assert.equal(bodies.body(status), first, 'unchanged: the same buffer')
    status.usage!.output_tokens++
    assert.equal(bodies.body(status).toString(), serialize(status))
    status.files_modified.push('c.txt')
    assert.equal(bodies.body(status).toString(), serialize(status))
  })

  test('a change to any one field of the schema, at the top or nested, gives a new body', () => {
    // One changed value per field of the status (TypeScript rejects a missing field; the
    // schema's own property list is checked against it at run time too).
    const changes: { [K in keyof SessionStatusType]-?: (s: SessionStatusType) => void } = {
      session_id: s => { s.session_id = '7f9619ff-8b86-4d11-b42d-00c04fc964ff' },
      status: s => { s.status = 'failed' },
      progress: s => { s.progress = 99 },
      created_at: s => { s.created_at = '2026-12-01T09:59:59.000Z' },
      started_at: s => { s.started_at = null },
      updated_at: s => { s.updated_at = '2026-12-01T10:00:03.001Z' },
      finished_at: s => { s.finished_at = null },
      cancelled_at: s => { s.cancelled_at = '2026-12-01T10:00:03.000Z' },
      model: s => { s.model.model = 'claude-opus-4-1' },
      last_event_id: s => { s.last_event_id = 13 },
      final_message: s => { s.final_message = null },
      files_modified: s => { s.files_modified[1] = 'src/c.ts' },
      error: s => { s.error = { code: 'engine', message: 'x' } },
      usage: s => { s.usage!.input_tokens = 1201 },
      stream_url: s => { s.stream_url = '/elsewhere' },
    }
    assert.deepEqual(Object.keys(changes).sort(), Object.keys(SessionStatus.properties).sort())
    for (const [field, change] of Object.entries(changes)) {
      const bodies = new StatusBodies(serialize)
      const status = base()
      const first = bodies.body(status)
      change(status) // in place, nested objects included
      const second = bodies.body(status)
      assert.notEqual(second, first, field)
      assert.equal(second.toString(), serialize(status), field)
      assert.ok(!sameStatus(base(), status), field)
      assert.ok(sameStatus(base(), base()), field)
    }
  })

  test('bounded: the oldest session\'s body goes first', () => {
    const bodies = new StatusBodies(serialize, 2)
    for (const n of [1, 2, 3]) bodies.body({ ...base(), session_id: `s${n}` })
    const cache = (bodies as unknown as { cache: Map<string, unknown> }).cache
    assert.deepEqual([...cache.keys()], ['s2', 's3'])
  })

  test('sameJson compares JSON values deeply', () => {
    assert.ok(sameJson({ a: [1, { b: null }] }, { a: [1, { b: null }] }))
    assert.ok(!sameJson({ a: [1] }, { a: [1, 2] }))
    assert.ok(!sameJson({ a: 1 }, { a: 1, b: 2 }))
    assert.ok(!sameJson({ a: 1, b: 2 }, { a: 1 }))
    assert.ok(!sameJson([1], { 0: 1 }))
    assert.ok(!sameJson(null, {}))
    assert.ok(!sameJson('1', 1))
  })
})
