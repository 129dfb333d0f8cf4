import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { lazyChildLogger, loggerOptions } from '../src/logger.js'
import { tempDirs, testConfig } from './support/config.js'
import { sessionBody } from './support/requests.js'

function capture () {
  const stream = new PassThrough()
  const lines: string[] = []
  stream.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)))
  return { stream, lines }
}

test('api_key and authorization are redacted at any depth', () => {
  const { stream, lines } = capture()
  const log = pino(loggerOptions('debug', false), stream)
  log.info({ api_key: 'k0', model_config: { api_key: 'k1' }, a: { b: { c: { api_key: 'k3', authorization: 'Bearer t' } } }, headers: { authorization: 'Bearer t2', 'x-api-key': 'k4' } }, 'x')
  const out = lines.join('\n')
  for (const secret of ['k0', 'k1', 'k3', 'Bearer t', 'k4']) assert.ok(!out.includes(`"${secret}`), `${secret} leaked: ${out}`)
  assert.match(out, /\[redacted\]/)
})

test('request logs are JSON with a request id and never carry the token or the key', async () => {
  const dirs = tempDirs()
  const { stream, lines } = capture()
  const secret = 'shared-secret-canary-123456'
  const app = await buildApp(testConfig(dirs, { LOG_LEVEL: 'debug', OPENCODE_SHARED_SECRET: secret, OPENCODE_BIN: '/nonexistent/opencode' }), { logStream: stream })
  try {
    await app.inject({ method: 'POST', url: '/sessions', headers: { authorization: `Bearer ${secret}`, 'x-request-id': 'req-1' }, payload: sessionBody({}, { api_key: 'sk-canary-key-987' }) })
    await app.inject({ method: 'POST', url: '/sessions', headers: { authorization: 'Bearer wrong-token-canary' }, payload: sessionBody() })
  } finally {
    await app.close()
    dirs.cleanup()
  }
  const records = lines.map(l => JSON.parse(l) as Record<string, unknown>)
  assert.ok(records.some(r => r.reqId === 'req-1'), 'the request id is on the request lines')
  const out = lines.join('\n')
  for (const canary of [secret, 'sk-canary-key-987', 'wrong-token-canary']) assert.ok(!out.includes(canary), `${canary} leaked into the logs`)
})

test('quiet routes build their request logger only when they log, and still carry the request id', () => {
  const { stream, lines } = capture()
  const log = pino(loggerOptions('info', false), stream)
  const quiet = lazyChildLogger(log, { reqId: 'r-1' }, { level: 'warn' })
  quiet.info('not written')
  quiet.debug('not written')
  assert.equal(lines.length, 0)
  quiet.warn({ api_key: 'sk-x' }, 'written')
  assert.equal(lines.length, 1)
  const record = JSON.parse(lines[0])
  assert.equal(record.reqId, 'r-1')
  assert.equal(record.msg, 'written')
  assert.equal(record.api_key, '[redacted]')
})
