import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { ConfigError, loadConfig } from '../src/config.js'

test('defaults follow the contract', () => {
  const c = loadConfig({})
  assert.equal(c.workspaceDir, '/workspace')
  assert.equal(c.port, 3003)
  assert.equal(c.host, '0.0.0.0')
  assert.equal(c.logLevel, 'info')
  assert.equal(c.sessionTimeoutMs, 3600_000)
  assert.equal(c.maxConcurrentSessions, 5)
  assert.equal(c.sharedSecret, undefined)
  assert.equal(c.heartbeatMs, 15_000)
  assert.equal(c.shutdownGraceMs, 25_000)
  assert.ok(!c.stateDir.startsWith('/workspace'))
})

test('values are read from the environment', () => {
  const c = loadConfig({ PORT: '8080', MAX_CONCURRENT_SESSIONS: '3', HEARTBEAT_INTERVAL: '1', LOG_LEVEL: 'debug', OPENCODE_SHARED_SECRET: 'x', WORKSPACE_DIR: '/w', STATE_DIR: '/s' })
  assert.deepEqual([c.port, c.maxConcurrentSessions, c.heartbeatMs, c.logLevel, c.sharedSecret, c.workspaceDir, c.stateDir], [8080, 3, 1000, 'debug', 'x', '/w', '/s'])
})

const bad: Array<[Record<string, string>, string, RegExp]> = [
  [{ PORT: 'abc' }, 'PORT', /integer from 0 to 65535 \(got "abc"\)/],
  [{ PORT: '3.5' }, 'PORT', /integer/],
  [{ PORT: '70000' }, 'PORT', /integer/],
  [{ MAX_CONCURRENT_SESSIONS: '0' }, 'MAX_CONCURRENT_SESSIONS', /from 1 to/],
  [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of debug, info, warn, error/],
  [{ HEARTBEAT_INTERVAL: '0' }, 'HEARTBEAT_INTERVAL', /from 1 to 300/],
  [{ SESSION_TIMEOUT: '-5' }, 'SESSION_TIMEOUT', /integer/],
  [{ SHUTDOWN_GRACE: 'soon' }, 'SHUTDOWN_GRACE', /integer/],
  [{ WORKSPACE_DIR: '/w', STATE_DIR: '/w/state' }, 'STATE_DIR', /outside WORKSPACE_DIR/],
  [{ OPENCODE_SHARED_SECRET: ' ' }, 'OPENCODE_SHARED_SECRET', /set but empty/],
]

for (const [env, variable, reason] of bad) {
  test(`${JSON.stringify(env)} is rejected naming ${variable}`, () => {
    assert.throws(() => loadConfig(env), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.variable, variable)
      assert.match(err.message, new RegExp(`^Invalid configuration: ${variable} `))
      assert.match(err.message, reason)
      return true
    })
  })
}

test('the server exits 1 with one line naming the bad variable', () => {
  for (const [env, variable] of [[{ PORT: 'abc' }, 'PORT'], [{ MAX_CONCURRENT_SESSIONS: '0' }, 'MAX_CONCURRENT_SESSIONS'], [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL']] as const) {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { PATH: process.env.PATH, ...env },
      encoding: 'utf8',
      timeout: 30_000,
    })
    assert.equal(run.status, 1, run.stderr)
    const lines = run.stderr.trim().split('\n')
    assert.equal(lines.length, 1, run.stderr)
    assert.match(lines[0], new RegExp(`^Invalid configuration: ${variable} `))
  }
})
