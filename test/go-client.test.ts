// Runs examples/go-client (standard library only) against a live sidecar with the scripted model:
// the backend's view of the contract. Needs the Go toolchain (Debian: golang-go); skips without it.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { byMarker, scenario } from './support/model-server.js'
import { startHarness, type Harness } from './support/harness.js'

const example = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'go-client')
const goVersion = spawnSync('go', ['version'], { encoding: 'utf8' })
const hasGo = goVersion.status === 0
// No network: the module has no dependencies, so nothing may be downloaded.
const goEnv = { ...process.env, GOFLAGS: '-mod=mod', GOPROXY: 'off', GOTOOLCHAIN: 'local', GOWORK: 'off' }

interface Run { code: number | null, stdout: string, stderr: string }

function run (file: string, args: string[], cwd = example, timeoutMs = 120_000): Promise<Run> {
  return new Promise(resolve => {
    execFile(file, args, { cwd, env: goEnv, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      resolve({ code, stdout, stderr })
    })
  })
}

function events (stdout: string): Array<{ id: number, type: string, data: Record<string, unknown> }> {
  return stdout.split('\n').filter(l => l.startsWith('event ')).map(line => {
    const [, id, type, json] = /^event (\d+) (\S+) (.*)$/.exec(line)!
    return { id: Number(id), type, data: JSON.parse(json) as Record<string, unknown> }
  })
}

// Go is optional on a developer's machine; CI installs golang-go (.ci/run).
describe('the Go client example', { skip: hasGo ? false : 'go is not installed (Debian: apt-get install golang-go): Go client example not run' }, () => {
  let h: Harness
  let bin: string
  let buildDir: string

  before(async () => {
    buildDir = mkdtempSync(path.join(tmpdir(), 'ocs-go-'))
    bin = path.join(buildDir, 'go-client')
    const [build, harness] = await Promise.all([
      run('go', ['build', '-o', bin, '.'], example, 180_000),
      startHarness({ OPENCODE_SHARED_SECRET: 'go-client-secret', HEARTBEAT_INTERVAL: '1' }),
    ])
    h = harness
    assert.equal(build.code, 0, `go build failed (${goVersion.stdout.trim()}):\n${build.stderr}`)
  })
  after(async () => {
    await h?.close()
    if (buildDir) rmSync(buildDir, { recursive: true, force: true })
  })

  test('go vet and the SSE parser\'s unit tests pass', async () => {
    const vet = await run('go', ['vet', './...'])
    assert.equal(vet.code, 0, vet.stderr)
    const unit = await run('go', ['test', './...'])
    assert.equal(unit.code, 0, unit.stdout + unit.stderr)
  })

  test('creates a session and streams it to the end across reconnections, seeing every event once', async () => {
    h.model.setHandler(byMarker({
      GOWRITE: scenario([
        { toolCalls: [{ name: 'bash', args: { command: 'printf "from go\\n" > go.txt', description: 'write go.txt' } }] },
        { text: 'Wrote go.txt for the Go client.' },
      ]),
    }))
    const result = await run(bin, [
      '--url', h.url, '--secret', 'go-client-secret', '--endpoint', `${h.model.url}/v1`,
      '--model', 'scripted-model', '--api-key', 'sk-go-test', '--prompt', 'GOWRITE a file', '--tools', 'bash,read',
      '--poll', '200ms', '--drop-after', '2', '--timeout', '90s',
    ])
    assert.equal(result.code, 0, result.stdout + result.stderr)
    const seen = events(result.stdout)
    assert.deepEqual(seen.map(e => e.id), seen.map((_, i) => i + 1), 'ids 1..n, none lost or repeated across reconnections')
    assert.ok(seen.length > 4, 'several reconnections happened (one every 2 events)')
    const last = seen.at(-1)!
    assert.equal(last.type, 'complete')
    assert.equal(last.data.final_message, 'Wrote go.txt for the Go client.')
    assert.deepEqual(last.data.files_modified, ['go.txt'])
    assert.equal(readFileSync(path.join(h.dirs.workspaceDir, 'go.txt'), 'utf8'), 'from go\n')
    const final = JSON.parse(/^final status (.*)$/m.exec(result.stdout)![1]) as Record<string, unknown>
    assert.equal(final.status, 'completed')
    assert.equal(final.progress, 100)
    assert.match(result.stderr, /^status: (pending|running|completed) \d+%$/m, 'the status poller ran beside the stream')
  })

  test('cancels a running session: the stream ends with status cancelled', async () => {
    h.model.setHandler(byMarker({ GOHANG: () => ({ hang: true }) }))
    const result = await run(bin, [
      '--url', h.url, '--secret', 'go-client-secret', '--endpoint', `${h.model.url}/v1`,
      '--model', 'scripted-model', '--api-key', 'sk-go-test', '--prompt', 'GOHANG forever',
      '--poll', '200ms', '--cancel-after', '2s', '--timeout', '60s',
    ])
    assert.equal(result.code, 0, result.stdout + result.stderr)
    assert.match(result.stdout, /^cancelled at \d{4}-/m)
    const last = events(result.stdout).at(-1)!
    assert.equal(last.type, 'status')
    assert.equal(last.data.status, 'cancelled')
    assert.match(result.stdout, /session cancelled$/m)
  })

  test('reports the API\'s error body for a wrong secret', async () => {
    const result = await run(bin, ['--url', h.url, '--secret', 'wrong', '--endpoint', `${h.model.url}/v1`, '--api-key', 'k', '--timeout', '10s'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /create session: HTTP 401/)
  })
})
