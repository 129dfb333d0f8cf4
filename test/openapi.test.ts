import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { tempDirs, testConfig, type TempDirs } from './support/config.js'

let dirs: TempDirs
let app: FastifyInstance
let doc: any

before(async () => {
  dirs = tempDirs()
  app = await buildApp(testConfig(dirs, { OPENCODE_BIN: '/nonexistent/opencode' }), { logger: false })
  const res = await app.inject({ url: '/openapi.json' })
  assert.equal(res.statusCode, 200)
  doc = res.json()
})
after(async () => {
  await app.close()
  dirs.cleanup()
})

test('is OpenAPI 3 and lists exactly the seven operations', () => {
  assert.match(doc.openapi, /^3\./)
  const operations = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops as object).map(m => `${m.toUpperCase()} ${path}`))
  assert.deepEqual(operations.sort(), [
    'DELETE /sessions/{sessionId}',
    'GET /health',
    'GET /healthz',
    'GET /ready',
    'GET /sessions/{sessionId}/status',
    'GET /sessions/{sessionId}/stream',
    'POST /sessions',
  ])
})

test('documents the create request and the status response', () => {
  const op = doc.paths['/sessions'].post
  const body = op.requestBody.content['application/json'].schema
  assert.deepEqual(body.required.sort(), ['model_config', 'prompt', 'session_id'])
  assert.equal(body.additionalProperties, false)
  const mc = body.properties.model_config
  assert.deepEqual(mc.required.sort(), ['api_key', 'enabled_tools', 'max_tokens', 'model', 'provider', 'temperature'])
  assert.equal(mc.properties.temperature.maximum, 2)
  const status = op.responses['201'].content['application/json'].schema
  for (const key of ['session_id', 'status', 'progress', 'created_at', 'last_event_id', 'files_modified', 'error', 'usage', 'stream_url']) {
    assert.ok(status.properties[key], key)
  }
  for (const code of ['400', '401', '409', '413', '415', '500', '503']) {
    const schema = op.responses[code].content['application/json'].schema
    assert.deepEqual(schema.required.sort(), ['error', 'timestamp'], code)
  }
})

test('documents the stream as text/event-stream with Last-Event-ID and the seven event payloads', () => {
  const op = doc.paths['/sessions/{sessionId}/stream'].get
  const stream = op.responses['200'].content['text/event-stream'].schema
  const titles = (stream.anyOf ?? stream.oneOf).map((s: { title: string }) => s.title).sort()
  assert.deepEqual(titles, ['complete', 'error', 'heartbeat', 'output', 'status', 'tool_call', 'tool_result'])
  const header = op.parameters.find((p: { in: string, name: string }) => p.in === 'header' && p.name === 'last-event-id')
  assert.ok(header, 'Last-Event-ID header is documented')
  assert.ok(op.parameters.find((p: { in: string, name: string }) => p.in === 'query' && p.name === 'last_event_id'))
  assert.ok(op.responses['406'])
})

test('documents the bearer scheme on the session operations only', () => {
  assert.deepEqual(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', description: doc.components.securitySchemes.bearerAuth.description })
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const op of Object.values(ops as Record<string, { security?: unknown }>)) {
      if (path.startsWith('/sessions')) assert.deepEqual(op.security, [{ bearerAuth: [] }], path)
      else assert.equal(op.security, undefined, path)
    }
  }
})

test('Swagger UI is served at /docs', async () => {
  const res = await app.inject({ url: '/docs/' })
  assert.equal(res.statusCode, 200)
  assert.match(res.body, /swagger-ui/i)
})
