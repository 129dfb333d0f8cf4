// Proves the scripted model server drives the REAL opencode engine in every wire
// format: text streaming, a real bash tool call that changes the workspace, and
// provider failures. Event sequences observed with opencode 1.18.33 (after the
// user message's message.updated / message.part.updated):
// - text: session.status busy → message.updated (assistant) → message.part.updated
//   step-start → text "" → message.part.delta × n → text (full) → step-finish
//   {tokens} → message.updated finish=stop → patch → session.status idle → session.idle.
// - bash tool: … text deltas → tool pending → tool running (input) → tool running
//   {metadata.output: cumulative} → tool completed {output} → step-finish →
//   message.updated finish=tool-calls → a NEW assistant message for the next step
//   (step-start, text deltas, step-finish, finish=stop) → session.idle.
// - 401: session.status busy → session.error {name: APIError, data: {statusCode: 401,
//   isRetryable: false}} → session.status idle → session.idle. No retry.
// - 429 + retry-after: session.status retry {attempt: 1, message, next: epoch ms} →
//   (retry-after honoured: 5 s asked, 5.04 s waited) → busy → normal stream.
// - 500 / mid-stream drop: retry with backoff ≈ 2, 4.5, 8.5, 18, 30 s; 5 retries,
//   then session.error APIError (isRetryable: true) → idle (error and idle may come
//   twice). A drop first streams the partial deltas; each retry starts a new
//   step-start and text part (new partID); the partial part is not removed.
// - hang: the engine waits indefinitely (no timeout by default); POST /session/{id}/abort
//   → session.error {name: MessageAbortedError} → session.status idle → session.idle.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { attempts, byMarker, scenario, startModelServer } from './support/model-server.js'
import type { ModelServer, RecordedRequest, WireFormat } from './support/model-server.js'

const engineBin = process.env.OPENCODE_BIN ?? fileURLToPath(new URL('../node_modules/.bin/opencode', import.meta.url))
const engineVersion = '1.18.33'

interface EngineEvent {
  type: string
  properties: unknown
  at: number
}

function field (value: unknown, ...path: string[]): unknown {
  let current = value
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined
    current = (current as Record<string, unknown>)[key]
  }
  return current
}

function sessionOf (event: EngineEvent): unknown {
  return field(event.properties, 'sessionID') ?? field(event.properties, 'part', 'sessionID') ?? field(event.properties, 'info', 'sessionID')
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

describe('model server without the engine', () => {
  let server: ModelServer
  before(async () => { server = await startModelServer() })
  after(async () => { await server.close() })

  test('records and normalizes a chat request, answers without streaming', async () => {
    server.setHandler(() => ({ text: 'plain answer', usage: { inputTokens: 3, outputTokens: 2 } }))
    const res = await fetch(`${server.url}/v1/chat/completions?x=1`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-test', 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'm1',
        temperature: 0.2,
        max_tokens: 100,
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: [{ type: 'text', text: 'first' }] },
          { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'bash', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'c1', content: 'ok' },
        ],
        tools: [{ type: 'function', function: { name: 'bash', parameters: {} } }],
      }),
    })
    assert.equal(res.status, 200)
    const body = await res.json() as unknown
    assert.equal(field(body, 'choices', '0', 'message', 'content'), 'plain answer')
    assert.equal(field(body, 'usage', 'total_tokens'), 5)
    const recorded = server.requests.at(-1)
    assert.ok(recorded)
    assert.equal(recorded.format, 'chat')
    assert.equal(recorded.stream, false)
    assert.equal(recorded.model, 'm1')
    assert.equal(recorded.apiKey, 'sk-test')
    assert.equal(recorded.temperature, 0.2)
    assert.equal(recorded.maxTokens, 100)
    assert.deepEqual(recorded.toolNames, ['bash'])
    assert.equal(recorded.system, 'be brief')
    assert.equal(recorded.lastUserText, 'first')
    assert.equal(recorded.assistantTurns, 1)
    assert.equal(recorded.toolResults, 1)
    assert.deepEqual(recorded.query, { x: '1' })
  })

  test('streams Anthropic events with a tool call', async () => {
    server.setHandler(() => ({ toolCalls: [{ name: 'bash', args: { command: 'ls' } }] }))
    const res = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'ak', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude', stream: true, system: [{ type: 'text', text: 'sys' }], messages: [{ role: 'user', content: 'go' }] }),
    })
    const text = await res.text()
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
    const names = [...text.matchAll(/^event: (\S+)$/gm)].map((match) => match[1])
    assert.deepEqual(names, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
    assert.match(text, /"stop_reason":"tool_use"/)
    assert.equal(server.requests.at(-1)?.apiKey, 'ak')
    assert.equal(server.requests.at(-1)?.system, 'sys')
  })

  test('fails with the provider error shape and retry-after', async () => {
    server.setHandler(() => ({ error: 429, retryAfter: 7 }))
    const res = await fetch(`${server.url}/v1beta/models/gemini-x:streamGenerateContent?alt=sse`, {
      method: 'POST',
      headers: { 'x-goog-api-key': 'gk', 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 9 } }),
    })
    assert.equal(res.status, 429)
    assert.equal(res.headers.get('retry-after'), '7')
    assert.equal(field(await res.json(), 'error', 'status'), 'RESOURCE_EXHAUSTED')
    const recorded = server.requests.at(-1)
    assert.equal(recorded?.format, 'google')
    assert.equal(recorded?.model, 'gemini-x')
    assert.equal(recorded?.maxTokens, 9)
    assert.equal(recorded?.apiKey, 'gk')
  })

  test('scenario, attempts and byMarker pick replies statelessly per conversation', async () => {
    const handler = byMarker({
      ALPHA: scenario([{ text: 'a0' }, attempts([{ error: 500 }, { text: 'a1' }])]),
      BETA: scenario([{ text: 'b0' }]),
    })
    const ask = async (user: string, assistantTurns: number): Promise<unknown> => {
      const messages: unknown[] = [{ role: 'user', content: user }]
      for (let i = 0; i < assistantTurns; i++) messages.push({ role: 'assistant', content: 'x' }, { role: 'user', content: 'more' })
      server.setHandler(handler)
      const res = await fetch(`${server.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages }) })
      return res.status === 200 ? field(await res.json(), 'choices', '0', 'message', 'content') : res.status
    }
    assert.equal(await ask('ALPHA go', 0), 'a0')
    assert.equal(await ask('BETA go', 0), 'b0')
    assert.equal(await ask('ALPHA go', 1), 500)
    assert.equal(await ask('ALPHA go', 1), 'a1')
    assert.equal(await ask('unknown', 0), 500)
  })

  test('close() ends hung and open streaming requests', async () => {
    const other = await startModelServer()
    other.setHandler((request) => request.lastUserText === 'hang' ? { hang: true } : { text: 'slow stream', chunkDelayMs: 60_000 })
    const post = async (text: string): Promise<unknown> => await fetch(`${other.url}/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: text }] }),
    }).then(async (res) => await res.text()).catch((err: unknown) => err)
    const hung = post('hang')
    const streaming = post('stream')
    while (other.requests.length < 2) await sleep(10)
    const started = Date.now()
    await other.close()
    await Promise.all([hung, streaming])
    assert.ok(Date.now() - started < 2000)
  })
})

describe('model server drives the real opencode engine', { concurrency: true }, () => {
  let server: ModelServer
  let root: string
  let workspace: string
  let engine: ChildProcess | undefined
  let base: string
  const events: EngineEvent[] = []
  const stopEvents = new AbortController()
  const query = (): string => `?directory=${encodeURIComponent(workspace)}`

  const models: Record<WireFormat, { providerID: string, modelID: string }> = {
    chat: { providerID: 'scripted', modelID: 'scripted-model' },
    responses: { providerID: 'openai', modelID: 'gpt-4o-mini' },
    anthropic: { providerID: 'anthropic', modelID: 'claude-sonnet-4-5' },
    google: { providerID: 'google', modelID: 'gemini-2.5-flash' },
  }
  const formats = Object.keys(models) as WireFormat[]

  const toolScenario = (format: WireFormat) => scenario([
    {
      text: `Creating the ${format} file.`,
      toolCalls: [{ name: 'bash', args: { command: `printf hello > out-${format}.txt && echo wrote-${format}`, description: 'Write a file' } }],
    },
    { text: `Finished ${format}.`, usage: { inputTokens: 42, outputTokens: 7 } },
  ])

  before(async () => {
    assert.equal(execFileSync(engineBin, ['--version'], { encoding: 'utf8' }).trim(), engineVersion)
    server = await startModelServer()
    server.setHandler(byMarker({
      ...Object.fromEntries(formats.map((format) => [`TOOL-${format}`, toolScenario(format)])),
      UNAUTHORIZED: scenario([{ error: 401 }]),
      RATELIMIT: attempts([{ error: 429, retryAfter: 3 }, { text: 'Recovered after the rate limit.' }]),
      DROPPED: attempts([{ dropAfterChunks: 3, text: 'this reply will be cut off' }, { text: 'Recovered after the drop.' }]),
      HANGING: scenario([{ hang: true }]),
    }))

    root = await mkdtemp(join(tmpdir(), 'model-server-test-'))
    workspace = join(root, 'workspace')
    const home = join(root, 'home')
    await mkdir(workspace)
    execFileSync('git', ['init', '-q'], { cwd: workspace })
    // Without this seed the engine runs `npm install @opencode-ai/plugin` here (network).
    const configDir = join(home, '.config', 'opencode')
    await mkdir(join(configDir, 'node_modules'), { recursive: true })
    const dependencies = { '@opencode-ai/plugin': engineVersion }
    await writeFile(join(configDir, 'package.json'), JSON.stringify({ dependencies }))
    await writeFile(join(configDir, 'package-lock.json'), JSON.stringify({ lockfileVersion: 3, packages: { '': { dependencies } } }))

    const provider = (path: string): { options: { baseURL: string, apiKey: string } } => ({ options: { baseURL: server.url + path, apiKey: 'placeholder' } })
    const config = {
      share: 'disabled',
      autoupdate: false,
      provider: {
        scripted: { npm: '@ai-sdk/openai-compatible', name: 'Scripted', ...provider('/v1'), models: { 'scripted-model': { name: 'Scripted', tool_call: true } } },
        openai: provider('/openai/v1'),
        anthropic: provider('/anthropic/v1'),
        google: provider('/google/v1beta'),
      },
    }
    engine = spawn(engineBin, ['serve', '--port', '0', '--hostname', '127.0.0.1'], {
      cwd: workspace,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        LANG: 'C.UTF-8',
        OPENCODE_DISABLE_MODELS_FETCH: '1',
        OPENCODE_DISABLE_AUTOUPDATE: '1',
        OPENCODE_PERMISSION: JSON.stringify({ '*': 'allow', external_directory: 'allow', doom_loop: 'allow', question: 'deny' }),
        OPENCODE_CONFIG_CONTENT: JSON.stringify(config),
      },
    })
    const child = engine
    base = await new Promise<string>((resolve, reject) => {
      let output = ''
      const timer = setTimeout(() => reject(new Error(`engine did not start: ${output}`)), 60_000)
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        const match = /opencode server listening on (http:\/\/\S+)/.exec(output)
        if (match !== null) {
          clearTimeout(timer)
          resolve(match[1])
        }
      })
      child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
      child.on('exit', (code) => reject(new Error(`engine exited with ${code}: ${output}`)))
    })
    await readEvents()
  })

  after(async () => {
    stopEvents.abort()
    if (engine?.pid !== undefined && engine.exitCode === null) {
      try { process.kill(-engine.pid, 'SIGKILL') } catch { /* already gone */ }
    }
    await server?.close()
    if (root !== undefined) await rm(root, { recursive: true, force: true })
  })

  async function readEvents (): Promise<void> {
    const res = await fetch(`${base}/event${query()}`, { signal: stopEvents.signal })
    assert.equal(res.status, 200)
    assert.ok(res.body)
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    ;(async () => {
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        buffer += value
        let end: number
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = block.split('\n').filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trim()).join('\n')
          if (data === '') continue
          const parsed = JSON.parse(data) as unknown
          events.push({ type: String(field(parsed, 'type')), properties: field(parsed, 'properties'), at: Date.now() })
        }
      }
    })().catch(() => { /* aborted in after() */ })
    // The first event proves the stream is live before any prompt is sent.
    while (!events.some((event) => event.type === 'server.connected')) await sleep(20)
  }

  async function engineRequest (method: string, path: string, body?: unknown): Promise<Response> {
    return await fetch(`${base}${path}${query()}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    })
  }

  async function startPrompt (format: WireFormat, text: string): Promise<string> {
    const created = await engineRequest('POST', '/session', { title: text })
    assert.equal(created.status, 200)
    const id = field(await created.json(), 'id')
    assert.equal(typeof id, 'string')
    const sessionId = String(id)
    const prompted = await engineRequest('POST', `/session/${sessionId}/prompt_async`, { parts: [{ type: 'text', text }], model: models[format] })
    assert.equal(prompted.status, 204)
    return sessionId
  }

  const sessionEvents = (sessionId: string): EngineEvent[] => events.filter((event) => sessionOf(event) === sessionId)

  async function waitForIdle (sessionId: string, timeoutMs = 90_000): Promise<EngineEvent[]> {
    const deadline = Date.now() + timeoutMs
    while (!sessionEvents(sessionId).some((event) => event.type === 'session.idle')) {
      if (Date.now() > deadline) throw new Error(`session ${sessionId} not idle: ${sessionEvents(sessionId).map((event) => event.type).join(', ')}`)
      await sleep(50)
    }
    return sessionEvents(sessionId)
  }

  function textOf (list: EngineEvent[]): string {
    return list
      .filter((event) => event.type === 'message.part.updated' && field(event.properties, 'part', 'type') === 'text')
      .map((event) => String(field(event.properties, 'part', 'text')))
      .join('|')
  }

  const requestsOf = (sessionId: string): RecordedRequest[] => server.requests.filter((request) => request.sessionId === sessionId)

  for (const format of formats) {
    test(`${format}: streams text and runs a scripted bash tool call`, { timeout: 120_000 }, async () => {
      const sessionId = await startPrompt(format, `TOOL-${format} please write the file`)
      const list = await waitForIdle(sessionId)

      assert.equal(readFileSync(join(workspace, `out-${format}.txt`), 'utf8'), 'hello')
      const tool = list.find((event) => field(event.properties, 'part', 'type') === 'tool' && field(event.properties, 'part', 'state', 'status') === 'completed')
      assert.equal(field(tool?.properties, 'part', 'tool'), 'bash')
      assert.match(String(field(tool?.properties, 'part', 'state', 'output')), new RegExp(`wrote-${format}`))
      const deltas = list.filter((event) => event.type === 'message.part.delta').map((event) => field(event.properties, 'delta')).join('')
      assert.match(deltas, new RegExp(`Finished ${format}\\.`))
      assert.match(textOf(list), new RegExp(`Finished ${format}\\.`))
      const finish = list.filter((event) => field(event.properties, 'part', 'type') === 'step-finish').at(-1)
      assert.equal(field(finish?.properties, 'part', 'tokens', 'input'), 42)
      assert.equal(field(finish?.properties, 'part', 'tokens', 'output'), 7)
      assert.ok(!list.some((event) => event.type === 'session.error'))

      const requests = requestsOf(sessionId)
      assert.equal(requests.length, 2)
      for (const request of requests) {
        assert.equal(request.format, format)
        assert.equal(request.model, models[format].modelID)
        assert.equal(request.apiKey, 'placeholder')
        assert.ok(request.toolNames.includes('bash'))
        assert.ok(request.system.length > 0)
        assert.match(request.lastUserText, new RegExp(`TOOL-${format}`))
      }
      assert.deepEqual(requests.map((request) => [request.assistantTurns, request.toolResults]), [[0, 0], [1, 1]])
    })
  }

  test('a 401 ends the prompt with a non-retryable APIError', { timeout: 60_000 }, async () => {
    const sessionId = await startPrompt('anthropic', 'UNAUTHORIZED')
    const list = await waitForIdle(sessionId)
    const error = list.find((event) => event.type === 'session.error')
    assert.equal(field(error?.properties, 'error', 'name'), 'APIError')
    assert.equal(field(error?.properties, 'error', 'data', 'statusCode'), 401)
    assert.equal(field(error?.properties, 'error', 'data', 'isRetryable'), false)
    assert.ok(!list.some((event) => field(event.properties, 'status', 'type') === 'retry'))
    assert.equal(requestsOf(sessionId).length, 1)
  })

  test('a 429 is retried after retry-after with a retry status', { timeout: 60_000 }, async () => {
    const sessionId = await startPrompt('chat', 'RATELIMIT')
    const list = await waitForIdle(sessionId)
    const retry = list.find((event) => field(event.properties, 'status', 'type') === 'retry')
    assert.equal(field(retry?.properties, 'status', 'attempt'), 1)
    assert.equal(typeof field(retry?.properties, 'status', 'next'), 'number')
    const [first, second] = requestsOf(sessionId)
    // retry-after is 3 s; the engine's own first backoff would be 2 s.
    assert.ok(second.receivedAt - first.receivedAt >= 2900, `retried after ${second.receivedAt - first.receivedAt} ms`)
    assert.match(textOf(list), /Recovered after the rate limit\./)
    assert.ok(!list.some((event) => event.type === 'session.error'))
  })

  test('a connection dropped mid-stream is retried', { timeout: 60_000 }, async () => {
    const sessionId = await startPrompt('responses', 'DROPPED')
    const list = await waitForIdle(sessionId)
    assert.ok(list.some((event) => field(event.properties, 'status', 'type') === 'retry'))
    assert.equal(requestsOf(sessionId).length, 2)
    assert.match(textOf(list), /Recovered after the drop\./)
  })

  test('a hanging model call ends on abort', { timeout: 60_000 }, async () => {
    const sessionId = await startPrompt('google', 'HANGING')
    while (requestsOf(sessionId).length === 0) await sleep(50)
    await sleep(500)
    assert.ok(!sessionEvents(sessionId).some((event) => event.type === 'session.idle'))
    const aborted = await engineRequest('POST', `/session/${sessionId}/abort`)
    assert.equal(aborted.status, 200)
    const list = await waitForIdle(sessionId, 10_000)
    const error = list.find((event) => event.type === 'session.error')
    assert.equal(field(error?.properties, 'error', 'name'), 'MessageAbortedError')
  })
})
