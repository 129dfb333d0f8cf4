import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { byMarker, scenario } from './support/model-server.js'
import {
  cancelSession, createSession, getStatus, parseSse, readStream, scriptedSession, sleep, startHarness, waitStatus, type Harness,
} from './support/harness.js'
import { descendants, readProc } from '../src/engine/process-tree.js'
import { ELIDED_MARKER } from '../src/sessions/mapper.js'
import { processesWith } from './support/processes.js'

/** Every regular file under dir (contents searched for canaries). */
function filesUnder (dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name)
    const stat = statSync(file, { throwIfNoEntry: false })
    if (stat?.isDirectory()) out.push(...filesUnder(file))
    else if (stat?.isFile()) out.push(file)
  }
  return out
}

/** Processes whose command line contains `marker`. */

describe('sessions on the real engine', () => {
  let h: Harness
  before(async () => {
    h = await startHarness({ MAX_CONCURRENT_SESSIONS: '5', HEARTBEAT_INTERVAL: '5', LOG_LEVEL: 'debug' })
  })
  after(async () => { await h?.close() })

  test('a bash tool writes a file: it is on disk, in files_modified, and the provider got the session\'s settings', async () => {
    h.model.setHandler(byMarker({
      WRITEFILE: scenario([
        { toolCalls: [{ name: 'bash', args: { command: 'mkdir -p src && printf "hello\\n" > src/out.txt && echo wrote', description: 'write a file' } }] },
        { text: 'I wrote src/out.txt.', usage: { inputTokens: 11, outputTokens: 4 } },
      ]),
    }))
    const body = scriptedSession(h, 'WRITEFILE please', { model: 'acme-unknown-model-7b', temperature: 0.35, max_tokens: 1234, enabled_tools: ['bash', 'read'] }, { system_prompt: 'SYSTEM-MARKER-42 be terse' })
    const created = await createSession(h, body)
    assert.equal(created.session_id, body.session_id)
    assert.ok(['pending', 'running'].includes(created.status))
    assert.equal(created.stream_url, `/sessions/${body.session_id}/stream`)
    const events = await readStream(h, body.session_id)
    const terminal = events.at(-1)!
    assert.equal(terminal.event, 'complete', JSON.stringify(events.slice(-3)))
    assert.equal(readFileSync(path.join(h.dirs.workspaceDir, 'src/out.txt'), 'utf8'), 'hello\n')
    assert.deepEqual(terminal.data.files_modified, ['src/out.txt'])
    assert.equal(terminal.data.final_message, 'I wrote src/out.txt.')

    const types = events.map(e => e.event)
    assert.deepEqual(types.slice(0, 2), ['status', 'status'])
    assert.ok(types.includes('tool_call') && types.includes('tool_result'))
    const call = events.find(e => e.event === 'tool_call')!
    assert.equal(call.data.tool, 'bash')
    const result = events.find(e => e.event === 'tool_result')!
    assert.equal(result.data.status, 'completed')
    assert.equal(result.data.call_id, call.data.call_id)
    assert.equal(events.filter(e => e.event === 'output' && e.data.source === 'tool').map(e => e.data.text).join(''), 'wrote\n')
    assert.equal(events.filter(e => e.event === 'output' && e.data.source === 'assistant').map(e => e.data.text).join(''), 'I wrote src/out.txt.')
    assert.deepEqual(events.map(e => e.id), events.map((_, i) => i + 1))

    const status = await getStatus(h, body.session_id)
    assert.equal(status.status, 'completed')
    assert.equal(status.progress, 100)
    assert.equal(status.final_message, 'I wrote src/out.txt.')
    assert.deepEqual(status.files_modified, ['src/out.txt'])
    assert.equal(status.last_event_id, terminal.id)
    assert.ok(status.usage && status.usage.output_tokens >= 4)
    assert.ok(status.finished_at && status.started_at)

    const requests = h.model.requests.filter(r => r.userTexts[0]?.includes('WRITEFILE'))
    assert.ok(requests.length >= 2)
    for (const r of requests) {
      assert.equal(r.apiKey, body.model_config.api_key)
      assert.equal(r.model, 'acme-unknown-model-7b')
      assert.equal(r.temperature, 0.35)
      assert.equal(r.maxTokens, 1234)
      assert.deepEqual([...r.toolNames].sort(), ['bash', 'read'])
      assert.match(r.system, /SYSTEM-MARKER-42/)
      assert.equal(r.headers['x-ocs-token'], undefined, 'the gateway token never reaches the provider')
    }
  })

  test('tool output beyond the engine\'s 30,000-character window: in order, no repeats, gaps marked', async (t) => {
    h.model.setHandler(scenario([
      { toolCalls: [{ name: 'bash', args: { command: 'for i in 1 2 3 4 5; do seq $(( (i-1)*4000+1 )) $(( i*4000 )); sleep 0.3; done', description: 'lots of output' } }] },
      { text: 'printed' },
    ]))
    const body = scriptedSession(h, 'big output')
    await createSession(h, body)
    const events = await readStream(h, body.session_id)
    assert.equal(events.at(-1)!.event, 'complete')
    const text = events.filter(e => e.event === 'output' && e.data.source === 'tool').map(e => e.data.text).join('')
    const numbers = text.split(ELIDED_MARKER).join('\n').split('\n').filter(line => /^\d+$/.test(line)).map(Number)
    for (let i = 1; i < numbers.length; i++) assert.ok(numbers[i] > numbers[i - 1], `out of order or repeated at ${numbers[i - 1]} → ${numbers[i]}`)
    assert.equal(numbers[0], 1)
    assert.equal(numbers.at(-1), 20000)
    if (numbers.length < 20000) assert.ok(text.includes(ELIDED_MARKER), 'missing output is marked')
    t.diagnostic(`${numbers.length} of 20000 lines streamed; ${text.split(ELIDED_MARKER).length - 1} gaps marked`)
  })

  test('the engine\'s event stream cut at the end of a session: reconciled from the engine, nothing lost or repeated', async (t) => {
    // `ss` (iproute2) finds the engine's port and kills sockets; without it the test cannot cut.
    let listening: string | undefined
    try {
      const engine = findEnginePid()
      listening = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' }).split('\n').find(l => l.includes(`pid=${engine},`))
    } catch {}
    const port = listening && /127\.0\.0\.1:(\d+)/.exec(listening)?.[1]
    if (!port) return t.skip('ss (iproute2) is not available or does not show the engine\'s port')
    const answer = 'All thirty lines were printed, one by one, as asked.'
    h.model.setHandler(scenario([
      { toolCalls: [{ name: 'bash', args: { command: 'for i in $(seq 1 30); do echo "line $i"; sleep 0.05; done', description: 'output' } }] },
      { text: answer, chunkDelayMs: 15 },
    ]))
    const body = scriptedSession(h, 'cut the engine stream')
    await createSession(h, body)
    // Follow the stream; once the final answer starts, cut every connection from the sidecar to
    // the engine (its event stream among them): the rest of the answer and the engine's idle then
    // happen while the sidecar is reconnecting, and only reading the session back recovers them.
    const res = await fetch(`${h.url}/sessions/${body.session_id}/stream`)
    const decoder = new TextDecoder()
    let text = ''
    let cut = false
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true })
      if (!cut && /event: tool_result[\s\S]*"source":"assistant"/.test(text)) {
        cut = true
        execFileSync('ss', ['-K', 'dst', '127.0.0.1', 'dport', '=', port], { stdio: 'ignore' })
      }
    }
    assert.ok(cut, 'the stream was cut during the answer')
    const events = parseSse(text).filter(e => e.event !== 'heartbeat')
    assert.equal(events.at(-1)!.event, 'complete', JSON.stringify(events.at(-1)))
    assert.equal(events.at(-1)!.data.final_message, answer)
    const tool = events.filter(e => e.event === 'output' && e.data.source === 'tool').map(e => e.data.text).join('')
    assert.equal(tool, Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join(''))
    assert.equal(events.filter(e => e.event === 'output' && e.data.source === 'assistant').map(e => e.data.text).join(''), answer)
    assert.equal(events.filter(e => e.event === 'tool_call').length, 1)
    assert.equal(events.filter(e => e.event === 'tool_result').length, 1)
    assert.deepEqual(events.map(e => e.id), events.map((_, i) => i + 1))
  })

  test('the write tool creates a file through the engine', async () => {
    h.model.setHandler(scenario([
      { toolCalls: [{ name: 'write', args: { filePath: path.join(h.dirs.workspaceDir, 'notes.md'), content: '# Notes\n' } }] },
      { text: 'done' },
    ]))
    const body = scriptedSession(h, 'write notes')
    await createSession(h, body)
    const events = await readStream(h, body.session_id)
    assert.equal(events.at(-1)!.event, 'complete')
    assert.equal(readFileSync(path.join(h.dirs.workspaceDir, 'notes.md'), 'utf8'), '# Notes\n')
    assert.deepEqual(events.at(-1)!.data.files_modified, ['notes.md'])
  })

  test('a disabled tool is neither offered to the model nor run', async () => {
    const marker = path.join(h.dirs.workspaceDir, 'must-not-exist.txt')
    h.model.setHandler(scenario([
      { toolCalls: [{ name: 'bash', args: { command: `touch ${marker}`, description: 'forbidden' } }] },
      { text: 'could not' },
    ]))
    const body = scriptedSession(h, 'DISABLED try bash', { enabled_tools: ['read'] })
    await createSession(h, body)
    const events = await readStream(h, body.session_id)
    assert.ok(['complete', 'error'].includes(events.at(-1)!.event))
    assert.equal(existsSync(marker), false, 'the disabled tool did not run')
    const requests = h.model.requests.filter(r => r.userTexts[0]?.includes('DISABLED'))
    assert.ok(requests.length >= 1)
    for (const r of requests) assert.deepEqual(r.toolNames, ['read'])
    const result = events.find(e => e.event === 'tool_result')
    if (result) assert.equal(result.data.status, 'error')
  })

  test('concurrent sessions on different providers keep their keys and models apart', async () => {
    const providers = ['openai', 'anthropic', 'google', 'openai-compatible'] as const
    h.model.setHandler(byMarker(Object.fromEntries(providers.map(p => [`[PROVIDER ${p}]`, scenario([
      { toolCalls: [{ name: 'bash', args: { command: `sleep 0.3; echo ${p}`, description: 'x' } }] },
      { text: `done ${p}` },
    ])]))))
    const bodies = providers.map(p => scriptedSession(h, `[PROVIDER ${p}] go`, { provider: p, model: `model-for-${p}`, api_key: `sk-${p}-secret-${Math.random()}` }))
    await Promise.all(bodies.map(b => createSession(h, b)))
    const streams = await Promise.all(bodies.map(b => readStream(h, b.session_id)))
    for (const [i, events] of streams.entries()) {
      const p = providers[i]
      assert.equal(events.at(-1)!.event, 'complete', `${p}: ${JSON.stringify(events.at(-1))}`)
      assert.equal(events.at(-1)!.data.final_message, `done ${p}`)
      const requests = h.model.requests.filter(r => r.userTexts[0]?.includes(`[PROVIDER ${p}]`))
      assert.ok(requests.length >= 2, p)
      const format = { openai: 'responses', anthropic: 'anthropic', google: 'google', 'openai-compatible': 'chat' }[p]
      for (const r of requests) {
        assert.equal(r.format, format)
        assert.equal(r.apiKey, bodies[i].model_config.api_key, `${p} carries its own key`)
        assert.equal(r.model, `model-for-${p}`)
        assert.equal(r.temperature, 0.3)
        assert.equal(r.maxTokens, 2048)
      }
    }
  })

  test('a provider 401 ends the session failed with provider_auth', async () => {
    h.model.setHandler(() => ({ error: 401, errorMessage: 'invalid api key' }))
    const body = scriptedSession(h, 'auth fails')
    await createSession(h, body)
    const events = await readStream(h, body.session_id)
    const terminal = events.at(-1)!
    assert.equal(terminal.event, 'error')
    assert.equal(terminal.data.fatal, true)
    assert.equal(terminal.data.code, 'provider_auth')
    const status = await getStatus(h, body.session_id)
    assert.equal(status.status, 'failed')
    assert.equal(status.error?.code, 'provider_auth')
  })

  test('a 429 with retry-after surfaces as a non-fatal error, then the session recovers', async () => {
    let failed = false
    h.model.setHandler((r) => {
      if (!failed) { failed = true; return { error: 429, retryAfter: 1 } }
      return scenario([{ text: 'recovered' }])(r)
    })
    const body = scriptedSession(h, 'rate limited')
    await createSession(h, body)
    const events = await readStream(h, body.session_id)
    const retry = events.find(e => e.event === 'error')!
    assert.equal(retry.data.fatal, false)
    assert.equal(retry.data.code, 'provider_retry')
    assert.equal(typeof retry.data.retry_after, 'number')
    assert.equal(events.at(-1)!.event, 'complete')
    assert.equal(events.at(-1)!.data.final_message, 'recovered')
  })

  test('cancel during `sleep 60`: cancelled within seconds, its process gone, idempotent; 409 for an ended session', async () => {
    const marker = `sleep 61.${process.pid}`
    h.model.setHandler(scenario([{ toolCalls: [{ name: 'bash', args: { command: `${marker}; echo never`, description: 'long' } }] }, { text: 'never' }]))
    const body = scriptedSession(h, 'long running')
    await createSession(h, body)
    const streamed = readStream(h, body.session_id)
    const deadline = Date.now() + 60_000
    while (processesWith(marker).length === 0 && Date.now() < deadline) await sleep(100)
    assert.ok(processesWith(marker).length > 0, 'the tool process started')
    const started = Date.now()
    const res = await cancelSession(h, body.session_id)
    assert.equal(res.status, 200)
    const cancelled = await res.json() as { session_id: string, status: string, cancelled_at: string }
    assert.equal(cancelled.status, 'cancelled')
    assert.equal(cancelled.session_id, body.session_id)
    const events = await streamed
    assert.equal(events.at(-1)!.event, 'status')
    assert.equal(events.at(-1)!.data.status, 'cancelled')
    while (processesWith(marker).length && Date.now() - started < 10_000) await sleep(100)
    assert.deepEqual(processesWith(marker), [], 'the sleep is gone')
    const again = await cancelSession(h, body.session_id)
    assert.equal(again.status, 200)
    assert.deepEqual(await again.json(), cancelled)
    assert.equal((await getStatus(h, body.session_id)).status, 'cancelled')

    h.model.setHandler(scenario([{ text: 'quick' }]))
    const done = scriptedSession(h, 'quick one')
    await createSession(h, done)
    await readStream(h, done.session_id)
    const conflict = await cancelSession(h, done.session_id)
    assert.equal(conflict.status, 409)
  })

  test('409 for an existing id (any case); 503 + Retry-After at MAX_CONCURRENT_SESSIONS', async () => {
    h.model.setHandler(() => ({ hang: true }))
    // Seven at once: exactly MAX_CONCURRENT_SESSIONS (5) are accepted, also when they race.
    const all = Array.from({ length: 7 }, (_, i) => scriptedSession(h, `hang ${i}`))
    const responses = await Promise.all(all.map(b => fetch(`${h.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) })))
    assert.deepEqual(responses.map(r => r.status).sort(), [201, 201, 201, 201, 201, 503, 503])
    for (const r of responses.filter(r => r.status === 503)) assert.match(String(r.headers.get('retry-after')), /^\d+$/)
    const bodies = all.filter((_, i) => responses[i].status === 201)
    const dup = await fetch(`${h.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...bodies[0], session_id: bodies[0].session_id.toUpperCase() }) })
    assert.equal(dup.status, 409)
    const extra = await fetch(`${h.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(scriptedSession(h, 'one too many')) })
    assert.equal(extra.status, 503)
    await Promise.all(bodies.map(b => cancelSession(h, b.session_id)))
    for (const b of bodies) assert.equal((await getStatus(h, b.session_id)).status, 'cancelled')
  })

  test('the agent\'s bash cannot use the provider gateway on loopback', async () => {
    // The agent reads the gateway's address from the engine's config in its environment, then
    // tries to claim the token and to send a model request for its own session without it.
    const probe = `
      const config = JSON.parse(process.env.OPENCODE_CONFIG_CONTENT)
      const base = config.provider['ocs-compatible'].options.baseURL.replace(/\\/p\\/.*$/, '')
      const out = {}
      out.bootstrap = (await fetch(base + '/bootstrap', { method: 'POST' })).status
      out.model = (await fetch(base + '/p/openai-compatible/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-ocs-session': process.argv[1] ?? 'x' }, body: '{"model":"m","messages":[]}' })).status
      out.tools = (await fetch(base + '/tools', { method: 'POST', headers: { 'x-ocs-token': 'guess' }, body: '{}' })).status
      require('fs').writeFileSync('gateway-probe.json', JSON.stringify(out))
    `
    writeFileSync(path.join(h.dirs.workspaceDir, 'probe.cjs'), `(async () => {${probe}})()`)
    h.model.setHandler(scenario([
      { toolCalls: [{ name: 'bash', args: { command: 'node probe.cjs', description: 'probe the gateway' } }] },
      { text: 'probed' },
    ]))
    const body = scriptedSession(h, 'probe')
    await createSession(h, body)
    await readStream(h, body.session_id)
    const result = JSON.parse(readFileSync(path.join(h.dirs.workspaceDir, 'gateway-probe.json'), 'utf8'))
    assert.deepEqual(result, { bootstrap: 403, model: 401, tools: 401 })
    assert.equal(h.model.requests.filter(r => r.userTexts.length === 0).length, 0, 'no model request without a conversation got through')
  })

  test('the key never reaches the engine\'s environment, its state, the workspace, or the logs', async () => {
    const canary = `sk-canary-${process.pid}-${Date.now()}`
    h.model.setHandler(scenario([
      { toolCalls: [{ name: 'bash', args: { command: 'env > env-dump.txt; cat /proc/$PPID/environ | tr "\\0" "\\n" >> env-dump.txt; ls', description: 'dump env' } }] },
      { text: 'ok' },
    ]))
    const body = scriptedSession(h, 'canary', { api_key: canary })
    const created = await createSession(h, body)
    const streamed = await readStream(h, body.session_id)
    for (const response of [created, streamed, await getStatus(h, body.session_id)]) assert.ok(!JSON.stringify(response).includes(canary), 'the key is in a response')
    const engine = readProc(findEnginePid())
    assert.ok(engine)
    const environ = readFileSync(`/proc/${engine.pid}/environ`, 'utf8')
    assert.ok(!environ.includes(canary))
    for (const proc of descendants(engine.pid)) {
      try { assert.ok(!readFileSync(`/proc/${proc.pid}/environ`, 'utf8').includes(canary)) } catch {}
    }
    for (const dir of [h.dirs.stateDir, h.dirs.workspaceDir]) {
      for (const file of filesUnder(dir)) assert.ok(!readFileSync(file).includes(canary), `${file} holds the key`)
    }
    assert.ok(readFileSync(path.join(h.dirs.workspaceDir, 'env-dump.txt'), 'utf8').includes('PATH='), 'the dump ran')
    assert.ok(h.logs.length > 0 && h.logs.join('').includes(body.session_id), 'debug logs were captured')
    const metrics = await (await fetch(`${h.url}/metrics`)).text()
    assert.ok(!metrics.includes(canary))
    assert.match(metrics, /opencode_server_sessions\{state="completed"\} [1-9]/)
    assert.match(metrics, /opencode_server_events_emitted_total\{event="tool_call"\} [1-9]/)
    assert.match(metrics, /opencode_server_provider_retries_total [1-9]/)
    assert.match(metrics, /opencode_server_session_duration_seconds_count\{status="cancelled"\} [1-9]/)
    assert.match(metrics, /opencode_server_time_to_first_agent_event_seconds_count [1-9]/)
    assert.ok(!h.logs.join('').includes(canary), 'the key is not in the debug logs')
  })
})

/** The engine child of this test process (`opencode serve`). */
function findEnginePid (): number {
  const out = execFileSync('pgrep', ['-P', String(process.pid), '-f', 'serve'], { encoding: 'utf8' }).trim().split('\n')
  return Number(out[0])
}

describe('session timeout', () => {
  let h: Harness
  before(async () => { h = await startHarness({ SESSION_TIMEOUT: '3' }) })
  after(async () => { await h?.close() })

  test('a session over SESSION_TIMEOUT ends failed with error.code timeout', async () => {
    h.model.setHandler(() => ({ hang: true }))
    const body = scriptedSession(h, 'hangs forever')
    await createSession(h, body)
    const events = await readStream(h, body.session_id)
    const terminal = events.at(-1)!
    assert.equal(terminal.event, 'error')
    assert.equal(terminal.data.code, 'timeout')
    assert.equal(terminal.data.fatal, true)
    const status = await waitStatus(h, body.session_id, s => s.status !== 'running')
    assert.equal(status.status, 'failed')
    assert.equal(status.error?.code, 'timeout')
  })
})
