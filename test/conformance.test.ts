import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import { scenario } from './support/model-server.js'
import { startHarness, type Harness } from './support/harness.js'

const run = promisify(execFile)

async function conformance (args: string[]): Promise<{ code: number, stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/conformance/cli.ts', ...args], { timeout: 180_000 })
    return { code: 0, stdout }
  } catch (err) {
    const e = err as { code?: number, stdout?: string }
    return { code: e.code ?? -1, stdout: e.stdout ?? '' }
  }
}

describe('conformance harness', () => {
  const secret = 'conformance-secret-0123456789'
  let h: Harness
  before(async () => { h = await startHarness({ OPENCODE_SHARED_SECRET: secret }) })
  after(async () => { await h?.close() })

  test('a live sidecar passes every check, the full scripted session included', async () => {
    h.model.setHandler(scenario([
      { toolCalls: [{ name: 'bash', args: { command: 'echo conformance', description: 'x' } }] },
      { text: 'hello from the scripted model' },
    ]))
    const { code, stdout } = await conformance(['--url', h.url, '--secret', secret, '--model-endpoint', `${h.model.url}/v1`])
    assert.equal(code, 0, stdout)
    assert.doesNotMatch(stdout, /^FAIL/m)
    assert.match(stdout, /PASS {2}full session: .* — completed after \d+ events/)
    assert.match(stdout, /^\d+ passed, 0 failed$/m)
  })

  test('without the secret the auth check fails and names the fix', async () => {
    const { code, stdout } = await conformance(['--url', h.url])
    assert.equal(code, 1)
    assert.match(stdout, /FAIL {2}auth: session routes answer without a token — the deployment requires a token: pass --secret/)
  })
})

test('a server that breaks the contract fails', async () => {
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/healthz' ? 200 : 500, { 'content-type': 'text/plain' })
    res.end('nope')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  try {
    const { code, stdout } = await conformance(['--url', `http://127.0.0.1:${(server.address() as AddressInfo).port}`])
    assert.equal(code, 1)
    assert.match(stdout, /FAIL {2}GET \/healthz/)
    assert.match(stdout, /FAIL {2}unknown route → 404 error shape/)
  } finally {
    server.close()
  }
})
