import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'

test('npm run demo (CI=true): a real session end to end, offline, exits 0', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true', PORT: '0' },
    encoding: 'utf8',
    timeout: 240_000,
  })
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`)
  assert.match(run.stdout, /complete/)
  assert.match(run.stdout, /hello\.js/)
})
