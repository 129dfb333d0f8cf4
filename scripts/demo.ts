// `npm run demo`: a whole session end to end, offline. A scripted model server on loopback stands in
// for the provider; the sidecar (the production app) runs the real engine on a temporary workspace;
// the agent edits a file there while this script prints the session's event stream live.
// CI=true or --once: exit after the session. Otherwise the sidecar stays up until Ctrl-C.
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { ConfigError, loadConfig } from '../src/config.js'
import { isSessionEventType, isTerminal } from '../src/events/types.js'
import { scenario, startModelServer, type ModelServer } from '../test/support/model-server.js'

const once = process.env.CI === 'true' || process.argv.includes('--once')
const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined
const paint = (code: string) => (text: string) => color ? `\x1b[${code}m${text}\x1b[0m` : text
const c = { dim: paint('2'), bold: paint('1'), red: paint('31'), green: paint('32'), yellow: paint('33'), blue: paint('34'), magenta: paint('35'), cyan: paint('36') }
const out = (line = '') => process.stdout.write(`${line}\n`)

const FILE = 'hello.js'
const SEED = "// The demo's workspace file: the agent replaces the TODO below.\nconsole.log('TODO')\n"

let app: FastifyInstance | undefined
let model: ModelServer | undefined
let root: string | undefined
let stopping: Promise<void> | undefined

function stop (code: number): Promise<void> {
  stopping ??= (async () => {
    await app?.close().catch(() => {})
    await model?.close().catch(() => {})
    if (root !== undefined) rmSync(root, { recursive: true, force: true })
    process.exit(code)
  })()
  return stopping
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping !== undefined) process.exit(130)
    out(`\n${c.dim('stopping the sidecar, its engine and the model server…')}`)
    stop(0).catch(() => process.exit(1))
  })
}

/** The agent's script: plan with todos (progress), edit the file with bash, read it back, answer. */
function agentScript (workspace: string) {
  const todos = (done: number) => ({
    todos: ['Replace the TODO in hello.js', 'Read hello.js back to check it', 'Report what changed'].map((content, i) => ({
      id: String(i + 1), content, priority: 'high', status: i < done ? 'completed' : i === done ? 'in_progress' : 'pending',
    })),
  })
  return scenario([
    { text: 'I will plan this first.', toolCalls: [{ name: 'todowrite', args: todos(0) }], chunkDelayMs: 30 },
    { text: 'Replacing the TODO with a greeting.', toolCalls: [{ name: 'bash', args: { command: `sed -i "s/'TODO'/'Hello from the OpenCode agent!'/" ${FILE} && echo "edited ${FILE}"`, description: `Edit ${FILE}` } }], chunkDelayMs: 30 },
    { toolCalls: [{ name: 'todowrite', args: todos(1) }] },
    { text: 'Reading it back.', toolCalls: [{ name: 'read', args: { filePath: path.join(workspace, FILE) } }], chunkDelayMs: 30 },
    { toolCalls: [{ name: 'todowrite', args: todos(3) }] },
    { text: `Done: ${FILE} now prints "Hello from the OpenCode agent!" instead of the TODO.`, chunkDelayMs: 40, usage: { inputTokens: 420, outputTokens: 37 } },
  ])
}

function bar (progress: number): string {
  const filled = Math.round(progress / 10)
  return `${c.green('█'.repeat(filled))}${c.dim('░'.repeat(10 - filled))} ${String(progress).padStart(3)}%`
}

const oneLine = (text: string, max = 100) => {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

/** Prints events as they arrive; consecutive output of one source continues on one line. */
class Printer {
  progress = 0
  private openOutput: string | undefined
  private heldNewline = false

  event (id: string | undefined, type: string, data: Record<string, unknown>): void {
    if (type === 'output') {
      const key = `${String(data.source)}:${String(data.call_id ?? '')}`
      const text = String(data.text)
      if (this.openOutput !== key) {
        this.line(id, type, data.source === 'tool' ? c.dim(`${String(data.tool ?? 'tool')} │ `) : c.dim('assistant │ '), false)
        this.openOutput = key
      }
      // A trailing newline waits for more text, so the next event's line is not preceded by a blank one.
      const body = (this.heldNewline ? '\n' : '') + text.replace(/\n$/, '')
      this.heldNewline = text.endsWith('\n')
      const indented = body.replace(/\n/g, `\n${' '.repeat(33)}`)
      process.stdout.write(data.source === 'tool' ? c.dim(indented) : indented)
      return
    }
    if (type === 'status') this.progress = Number(data.progress ?? this.progress)
    if (type === 'complete') this.progress = 100
    this.line(id, type, this.describe(type, data))
  }

  private describe (type: string, data: Record<string, unknown>): string {
    switch (type) {
      case 'status': return `${c.bold(String(data.status))}${data.message ? c.dim(` ${String(data.message)}`) : ''}`
      case 'tool_call': return `${c.magenta(String(data.tool))} ${c.dim(oneLine(JSON.stringify(data.args)))}`
      case 'tool_result': {
        const ok = data.status === 'completed'
        const result = (data.result ?? {}) as Record<string, unknown>
        return `${c.magenta(String(data.tool))} ${ok ? c.green('✓') : c.red('✗')} ${c.dim(`${String(data.duration_ms)} ms ${oneLine(String(result.title ?? result.error ?? ''), 60)}`)}`
      }
      case 'error': return c.red(`${String(data.code)}: ${String(data.error)}${data.fatal ? ' (fatal)' : ''}`)
      case 'complete': return `${c.green('✓')} ${oneLine(String(data.final_message ?? ''))} ${c.dim(`files: ${JSON.stringify(data.files_modified)} · ${String(data.duration_ms)} ms`)}`
      default: return c.dim(JSON.stringify(data))
    }
  }

  private line (id: string | undefined, type: string, text: string, newline = true): void {
    this.end()
    const tint = { status: c.blue, tool_call: c.yellow, tool_result: c.yellow, error: c.red, complete: c.green, output: c.cyan }[type] ?? c.dim
    process.stdout.write(`${bar(this.progress)} ${c.dim(`#${(id ?? '').padEnd(3)}`)} ${tint(type.padEnd(11))} ${text}${newline ? '\n' : ''}`)
  }

  end (): void {
    if (this.openOutput !== undefined) process.stdout.write('\n')
    this.openOutput = undefined
    this.heldNewline = false
  }
}

/**
 * Follows the stream until its terminal event, printing each event; reconnects with
 * Last-Event-ID if the connection drops first, as any client of the contract should.
 */
async function follow (base: string, sessionId: string, printer: Printer): Promise<Record<string, unknown>> {
  let lastId: string | undefined
  for (let attempt = 0; attempt < 5; attempt++) {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (lastId !== undefined) headers['last-event-id'] = lastId
    const res = await fetch(`${base}/sessions/${sessionId}/stream`, { headers })
    if (res.status !== 200 || res.body === null) throw new Error(`stream: HTTP ${res.status} ${await res.text()}`)
    const decoder = new TextDecoder()
    let buffer = ''
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true }).replace(/\r\n?/g, '\n')
      let end: number
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        let type = 'message'
        let id: string | undefined
        const data: string[] = []
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':')
          const field = colon === -1 ? line : line.slice(0, colon)
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
          if (field === 'event') type = value
          else if (field === 'id') id = value
          else if (field === 'data') data.push(value)
        }
        if (id !== undefined) lastId = id
        if (data.length === 0 || !isSessionEventType(type)) continue
        const payload = JSON.parse(data.join('\n')) as Record<string, unknown>
        printer.event(id, type, payload)
        if (isTerminal(type, payload)) return { type, ...payload }
      }
    }
    printer.end()
    out(c.yellow(`stream closed early; reconnecting with Last-Event-ID ${lastId ?? '(none)'}`))
  }
  throw new Error('the stream kept closing before the session ended')
}

async function waitReady (base: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
  let last = ''
  for (let i = 0; Date.now() < deadline; i++) {
    const res = await fetch(`${base}/ready`)
    if (res.status === 200) return
    last = ((await res.json()) as { error?: string }).error ?? ''
    if (process.stdout.isTTY) process.stdout.write(`\r${c.cyan(frames[i % frames.length])} waiting for the engine: ${c.dim(last)}\x1b[K`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  throw new Error(`the sidecar was not ready within ${timeoutMs / 1000} s: ${last}`)
}

async function main (): Promise<void> {
  const started = Date.now()
  root = mkdtempSync(path.join(tmpdir(), 'opencode-demo-'))
  const workspace = path.join(root, 'workspace')
  const state = path.join(root, 'state')
  mkdirSync(workspace)
  mkdirSync(state)
  writeFileSync(path.join(workspace, FILE), SEED)

  model = await startModelServer()
  model.setHandler(agentScript(workspace))

  let config
  try {
    config = loadConfig({
      WORKSPACE_DIR: workspace,
      STATE_DIR: state,
      HOST: process.env.HOST ?? '127.0.0.1',
      PORT: process.env.PORT ?? '3003',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      HEARTBEAT_INTERVAL: '15',
    })
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(err.message)
    throw err
  }
  app = await buildApp(config, process.env.LOG_LEVEL === undefined ? { logger: false } : { logStream: process.stderr })
  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    throw new Error(`cannot listen on ${config.host}:${config.port} (${(err as Error).message}); set PORT to another port`)
  }
  const { port } = app.server.address() as AddressInfo
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`

  out(c.bold('opencode-server demo') + c.dim(' — a real session through the real engine, offline'))
  out(`  ${c.dim('sidecar     ')} ${base}`)
  out(`  ${c.dim('model       ')} ${model.url}/v1 ${c.dim('(scripted, OpenAI-compatible, loopback only)')}`)
  out(`  ${c.dim('workspace   ')} ${workspace}`)
  out()

  await waitReady(base, 120_000)
  if (process.stdout.isTTY) process.stdout.write('\r\x1b[K')
  out(`${c.green('✓')} ready in ${((Date.now() - started) / 1000).toFixed(1)} s ${c.dim('(GET /ready → 200)')}`)

  const sessionId = randomUUID()
  const body = {
    session_id: sessionId,
    prompt: `In ${FILE}, replace the TODO with a friendly greeting, then check the file.`,
    system_prompt: 'You are a careful engineer. Keep a todo list.',
    model_config: {
      provider: 'openai-compatible',
      model: 'scripted-demo-model',
      api_key: 'sk-demo-not-a-real-key',
      temperature: 0.2,
      max_tokens: 1024,
      enabled_tools: ['read', 'write', 'edit', 'bash', 'todowrite', 'todoread'],
      api_endpoint: `${model.url}/v1`,
    },
  }
  const created = await fetch(`${base}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (created.status !== 201) throw new Error(`POST /sessions: HTTP ${created.status} ${await created.text()}`)
  out(`${c.green('✓')} POST /sessions → 201 ${c.dim(`session ${sessionId}`)}`)
  out(`${c.dim(`  streaming GET /sessions/${sessionId}/stream`)}`)
  out()

  const printer = new Printer()
  const terminal = await follow(base, sessionId, printer)
  printer.end()
  out()

  out(c.bold(`${FILE} in the workspace now:`))
  for (const line of readFileSync(path.join(workspace, FILE), 'utf8').trimEnd().split('\n')) out(`  ${c.cyan('│')} ${line}`)
  out()

  const ok = terminal.type === 'complete'
  out(ok ? `${c.green('✓')} session completed` : c.red(`✗ session ended with ${terminal.type}: ${JSON.stringify(terminal)}`))
  if (once) return await stop(ok ? 0 : 1)

  const another = randomUUID()
  const anotherBody = JSON.stringify({ ...body, session_id: another })
  out()
  out(c.bold('The sidecar keeps running. Try:'))
  out(`  ${c.dim('Swagger UI ')} ${base}/docs`)
  out(`  ${c.dim('OpenAPI    ')} ${base}/openapi.json`)
  out(`  ${c.dim('status     ')} curl -s ${base}/sessions/${sessionId}/status`)
  out(`  ${c.dim('stream     ')} curl -N ${base}/sessions/${sessionId}/stream`)
  out(`  ${c.dim('resume     ')} curl -N -H 'Last-Event-ID: 5' ${base}/sessions/${sessionId}/stream`)
  out(`  ${c.dim('new session')} curl -s -X POST ${base}/sessions -H 'content-type: application/json' -d '${anotherBody}'`)
  out(`  ${c.dim('cancel it  ')} curl -s -X DELETE ${base}/sessions/${another}`)
  out(`  ${c.dim('probes     ')} curl -s ${base}/healthz; curl -s ${base}/ready`)
  out()
  out(c.dim('Ctrl-C stops the sidecar, its engine and the model server, and removes the temporary workspace.'))
}

main().catch(async (err: unknown) => {
  process.stdout.write('\n')
  process.stderr.write(`${c.red('demo failed:')} ${err instanceof Error ? err.message : String(err)}\n`)
  await stop(1)
})
