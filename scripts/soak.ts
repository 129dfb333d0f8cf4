// `npm run soak`: the sidecar (its own process, as in production) under a steady load for
// SOAK_SECONDS (60): MAX_CONCURRENT_SESSIONS (5) sessions always running on the scripted model,
// 100 SSE clients on them, status polling at 200 requests/s, and /healthz probed every 100 ms.
// Reports the probe's p99 latency, errors, events lost, and the sidecar's and engine's RSS;
// writes bench/soak-results.json. Exit 1 when a target is missed (p99 ≥ 100 ms, any error or loss).
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir, cpus, totalmem } from 'node:os'
import path from 'node:path'
import { scenario, startModelServer } from '../test/support/model-server.js'
import { parseSse, type StreamedEvent } from '../test/support/harness.js'
import { freePort } from '../src/engine/supervisor.js'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60)
const SESSIONS = 5
const CLIENTS = 100
const POLL_PER_SECOND = 200

const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms))

function rssMb (pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
    return kb / 1024
  } catch {
    return 0
  }
}

function childrenOf (pid: number): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name))
    } catch {}
  }
  return out
}

function treeRss (pid: number): number {
  let total = rssMb(pid)
  for (const child of childrenOf(pid)) total += treeRss(child)
  return total
}

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0
}

const root = mkdtempSync(path.join(tmpdir(), 'opencode-soak-'))
const workspace = path.join(root, 'workspace')
const state = path.join(root, 'state')
mkdirSync(workspace)
mkdirSync(state)
const model = await startModelServer()
model.setHandler(scenario([
  { toolCalls: [{ name: 'bash', args: { command: 'for i in $(seq 1 40); do echo "soak line $i"; sleep 0.25; done', description: 'steady output' } }] },
  { text: 'Soak session finished: forty lines printed.' },
]))
const port = await freePort()
const base = `http://127.0.0.1:${port}`
const sidecar = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
  env: { PATH: process.env.PATH, WORKSPACE_DIR: workspace, STATE_DIR: state, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', MAX_CONCURRENT_SESSIONS: String(SESSIONS) },
  stdio: ['ignore', 'ignore', 'inherit'],
})

let errors = 0
const errorSamples: string[] = []
const fail = (what: string) => {
  errors++
  if (errorSamples.length < 10) errorSamples.push(what)
}

try {
  for (let ready = false; !ready;) {
    ready = await fetch(`${base}/ready`).then(r => r.status === 200, () => false)
    if (!ready) await sleep(200)
  }
  const enginePid = childrenOf(sidecar.pid!)[0]
  const idle = { sidecar: rssMb(sidecar.pid!), engine: treeRss(enginePid) }
  process.stdout.write(`ready; soaking for ${SECONDS} s\n`)

  const deadline = Date.now() + SECONDS * 1000
  const running = new Set<string>()
  const sessions: string[] = []
  const received = new Map<string, StreamedEvent[][]>()

  const streamClient = async (id: string) => {
    try {
      const res = await fetch(`${base}/sessions/${id}/stream`, { headers: { accept: 'text/event-stream' } })
      if (res.status !== 200) return fail(`stream ${res.status}`)
      const events = parseSse(await res.text()).filter(e => e.event !== 'heartbeat')
      received.get(id)!.push(events)
    } catch (err) {
      fail(`stream: ${(err as Error).message}`)
    }
  }
  const clientsDone: Array<Promise<void>> = []
  const startSession = async () => {
    const id = randomUUID()
    const res = await fetch(`${base}/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ session_id: id, prompt: 'soak', model_config: { provider: 'openai-compatible', model: 'soak', api_key: 'sk-soak', temperature: 0, max_tokens: 512, enabled_tools: ['bash'], api_endpoint: `${model.url}/v1` } }),
    })
    if (res.status !== 201) return fail(`create ${res.status} ${await res.text()}`)
    running.add(id)
    sessions.push(id)
    received.set(id, [])
    const clients = Array.from({ length: CLIENTS / SESSIONS }, () => streamClient(id))
    clientsDone.push(...clients)
    await Promise.all(clients)
    running.delete(id)
  }
  const keepRunning = (async () => {
    const slots: Array<Promise<void>> = []
    for (let i = 0; i < SESSIONS; i++) {
      slots.push((async () => { while (Date.now() < deadline) await startSession() })())
    }
    await Promise.all(slots)
  })()

  const probe: number[] = []
  const probing = (async () => {
    while (Date.now() < deadline) {
      const t0 = performance.now()
      const res = await fetch(`${base}/healthz`).catch(() => undefined)
      probe.push(performance.now() - t0)
      if (res?.status !== 200) fail(`healthz ${res?.status}`)
      else await res.arrayBuffer()
      await sleep(100)
    }
  })()

  let polls = 0
  const polling = (async () => {
    const interval = 1000 / POLL_PER_SECOND
    let next = performance.now()
    const inflight = new Set<Promise<void>>()
    while (Date.now() < deadline) {
      const id = sessions[polls % Math.max(1, sessions.length)]
      if (id) {
        polls++
        const p = fetch(`${base}/sessions/${id}/status`).then(async r => { if (r.status !== 200) fail(`status ${r.status}`); await r.arrayBuffer() }, err => fail(`status: ${err.message}`))
        inflight.add(p)
        p.finally(() => inflight.delete(p))
      }
      next += interval
      await sleep(Math.max(0, next - performance.now()))
    }
    await Promise.all(inflight)
  })()

  let peak = { sidecar: 0, engine: 0, total: 0 }
  const sampling = (async () => {
    while (Date.now() < deadline) {
      const s = rssMb(sidecar.pid!)
      const e = treeRss(enginePid)
      peak = { sidecar: Math.max(peak.sidecar, s), engine: Math.max(peak.engine, e), total: Math.max(peak.total, s + e) }
      await sleep(500)
    }
  })()

  await Promise.all([probing, polling, sampling, keepRunning])
  await Promise.all(clientsDone)

  // Events lost: every client must have received exactly the session's full log.
  let lost = 0
  let eventsSeen = 0
  for (const id of sessions) {
    const replay = parseSse(await (await fetch(`${base}/sessions/${id}/stream`)).text()).filter(e => e.event !== 'heartbeat')
    const expected = JSON.stringify(replay)
    for (const events of received.get(id) ?? []) {
      eventsSeen += events.length
      if (JSON.stringify(events) !== expected) lost += Math.max(1, replay.length - events.length)
    }
  }
  const results = {
    machine: { cpu_model: cpus()[0]?.model, cores: cpus().length, memory_gib: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, date: new Date().toISOString() },
    seconds: SECONDS,
    sessions_completed: sessions.length,
    stream_clients_concurrent: CLIENTS,
    stream_connections: sessions.length * (CLIENTS / SESSIONS),
    events_received: eventsSeen,
    status_polls: polls,
    status_polls_per_second: +(polls / SECONDS).toFixed(1),
    healthz_probes: probe.length,
    healthz_p50_ms: +percentile(probe, 50).toFixed(2),
    healthz_p99_ms: +percentile(probe, 99).toFixed(2),
    healthz_max_ms: +Math.max(...probe).toFixed(2),
    errors,
    error_samples: errorSamples,
    events_lost: lost,
    rss_mb: { idle_sidecar: +idle.sidecar.toFixed(1), idle_engine: +idle.engine.toFixed(1), peak_sidecar: +peak.sidecar.toFixed(1), peak_engine: +peak.engine.toFixed(1), peak_total: +peak.total.toFixed(1) },
  }
  writeFileSync(new URL('../bench/soak-results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`)
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`)
  const ok = results.healthz_p99_ms < 100 && errors === 0 && lost === 0
  process.stdout.write(ok ? 'soak: all targets met\n' : 'soak: TARGET MISSED\n')
  process.exitCode = ok ? 0 : 1
} finally {
  sidecar.kill('SIGTERM')
  await new Promise(resolve => sidecar.once('exit', resolve))
  await model.close()
  rmSync(root, { recursive: true, force: true })
}
