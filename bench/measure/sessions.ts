import { readFileSync } from 'node:fs'
import { EngineClient } from '../../src/engine/client.js'
import { EngineEventStream, type EngineEvent } from '../../src/engine/event-stream.js'
import type { EngineSupervisor } from '../../src/engine/supervisor.js'
import { descendants, isAlive, type ProcInfo } from '../../src/engine/process-tree.js'
import { engineToolIds, promptToolMap } from '../../src/sessions/tools.js'
import type { ModelServer } from '../../test/support/model-server.js'
import type { EngineInfo, Sidecar } from '../lib/children.js'
import { LatencyTracker, type SlowSample } from '../lib/latency.js'
import { MB, cpuMsOf, rssOf, rssParts, treeRss } from '../lib/proc.js'
import { ENABLED_TOOLS, createBody, prompt } from '../lib/scripts.js'
import { openSse, type SseFrame } from '../lib/sse.js'
import { median, poll, quantile, sleep } from '../lib/stats.js'

export interface SessionContext {
  sidecar: Sidecar
  url: string
  engine: EngineInfo
  modelUrl: string
  model: ModelServer
  /** Engine B: a second `opencode serve` the bench drives directly (see README). */
  direct: EngineSupervisor
  directProvider: string
}

/** The driver's own subscription to the sidecar's engine: every event, stamped on arrival. */
export async function watchEngine (ctx: SessionContext): Promise<{ stream: EngineEventStream, setTracker: (t: LatencyTracker | undefined) => void }> {
  const client = new EngineClient({ baseUrl: ctx.engine.url, directory: ctx.sidecar.workspaceDir, password: ctx.engine.password })
  const stream = new EngineEventStream({ client })
  let tracker: LatencyTracker | undefined
  stream.on('event', (event: EngineEvent) => { tracker?.engineEvent(event, performance.now()) })
  await stream.start(10_000)
  return { stream, setTracker: (t) => { tracker = t } }
}

async function createViaSidecar (url: string, marker: string, modelUrl: string): Promise<string> {
  const body = createBody(marker, modelUrl)
  const res = await fetch(`${url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await res.text()
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${text}`)
  return body.session_id
}

const isTerminal = (f: SseFrame): boolean =>
  f.event === 'complete' || (f.event === 'error' && f.data.includes('"fatal":true')) || (f.event === 'status' && f.data.includes('"status":"cancelled"'))

/** (a) POST /sessions, then an SSE client reads the stream until the session's terminal event. */
export interface Phases { [phase: string]: number }

/** When each scripted model request arrived, in ms after `wall0` (Date.now() at the session's start). */
function modelRequestTimes (ctx: SessionContext, from: number, wall0: number): number[] {
  return ctx.model.requests.slice(from).map(r => r.receivedAt - wall0)
}

export async function runViaSidecar (ctx: SessionContext, marker: string, tracker?: LatencyTracker): Promise<{ ms: number, frames: SseFrame[], id: string, phases: Phases }> {
  const firstRequest = ctx.model.requests.length
  const wall0 = Date.now()
  const t0 = performance.now()
  const id = await createViaSidecar(ctx.url, marker, ctx.modelUrl)
  const tCreated = performance.now()
  let tEnd = 0
  const stream = openSse(`${ctx.url}/sessions/${id}/stream`, {
    timeoutMs: 120_000,
    onFrame: (f) => {
      tracker?.sidecarFrame(f)
      if (isTerminal(f)) tEnd = f.t
    },
  })
  await stream.opened
  if (tracker) tracker.since = performance.now()
  const frames = await stream.done
  const last = frames.at(-1)
  if (last?.event !== 'complete') throw new Error(`session ${id} did not complete: ${last?.event} ${last?.data}`)
  const [m1 = Number.NaN, m2 = Number.NaN] = modelRequestTimes(ctx, firstRequest, wall0)
  const phases: Phases = { created: tCreated - t0, model_request_1: m1, model_request_2: m2, complete: tEnd - t0 }
  return { ms: tEnd - t0, frames, id, phases }
}

/** (b) The same session straight against an engine: create, prompt_async, its /event until session.idle. */
export async function runDirect (ctx: SessionContext, marker: string): Promise<{ ms: number, phases: Phases }> {
  const client = ctx.direct.client
  if (client === undefined) throw new Error('direct engine not ready')
  const firstRequest = ctx.model.requests.length
  const wall0 = Date.now()
  const t0 = performance.now()
  const session = await client.createSession(`bench direct ${marker}`)
  let onEvent!: (event: EngineEvent) => void
  const idle = new Promise<number>((resolve, reject) => {
    onEvent = (event) => {
      const p = event.properties as Record<string, unknown>
      if (event.type === 'session.error' && p.sessionID === session.id) reject(new Error(`direct session failed: ${JSON.stringify(p.error)}`))
      if (event.type === 'session.idle' && p.sessionID === session.id) resolve(performance.now())
    }
    ctx.direct.on('event', onEvent)
  })
  try {
    await client.promptAsync(session.id, {
      parts: [{ type: 'text', text: prompt(marker) }],
      model: { providerID: ctx.directProvider, modelID: 'scripted-model' },
      tools: promptToolMap(engineToolIds(ENABLED_TOOLS)),
    })
    const tCreated = performance.now()
    const ms = (await idle) - t0
    const [m1 = Number.NaN, m2 = Number.NaN] = modelRequestTimes(ctx, firstRequest, wall0)
    return { ms, phases: { created: tCreated - t0, model_request_1: m1, model_request_2: m2, complete: ms } }
  } finally {
    ctx.direct.off('event', onEvent)
  }
}

/**
 * Alternating a/b runs. The driver's own engine subscription is not open meanwhile: it would be a
 * second /event consumer on the sidecar's engine only (the engine serializes every event per client).
 */
export async function measureOverhead (ctx: SessionContext, runs: number) {
  const a: number[] = []
  const b: number[] = []
  // CPU (user + system, /proc) used during the measured runs: the sidecar and its engine in (a),
  // the direct engine in (b). Tool processes are the engines' children and not counted.
  const cpu = { sidecar: 0, engineA: 0, engineB: 0 }
  const directPid = ctx.direct.pid ?? 0
  const phasesA: Phases[] = []
  const phasesB: Phases[] = []
  // Warm-up (instance caches, first LLM call paths) on both sides; not counted.
  await runViaSidecar(ctx, 'BENCH-OVERHEAD')
  await runDirect(ctx, 'BENCH-OVERHEAD')
  let sessionId = ''
  for (let i = 0; i < runs; i++) {
    for (const side of i % 2 === 0 ? ['a', 'b'] : ['b', 'a']) {
      if (side === 'a') {
        const s0 = cpuMsOf(ctx.sidecar.pid)
        const e0 = cpuMsOf(ctx.engine.pid)
        const run = await runViaSidecar(ctx, 'BENCH-OVERHEAD')
        cpu.sidecar += cpuMsOf(ctx.sidecar.pid) - s0
        cpu.engineA += cpuMsOf(ctx.engine.pid) - e0
        a.push(run.ms)
        phasesA.push(run.phases)
        sessionId = run.id
      } else {
        const e0 = cpuMsOf(directPid)
        const run = await runDirect(ctx, 'BENCH-OVERHEAD')
        cpu.engineB += cpuMsOf(directPid) - e0
        b.push(run.ms)
        phasesB.push(run.phases)
      }
    }
  }
  return {
    runs,
    via_sidecar_ms: a.map(Math.round),
    direct_ms: b.map(Math.round),
    via_sidecar_ms_median: Math.round(median(a)),
    direct_ms_median: Math.round(median(b)),
    session_overhead_ratio: median(a) / median(b),
    // Means per session (/proc counts in 10 ms ticks, so single sessions are too coarse). On two
    // cores the engine keeps more than one busy during a session: the sidecar's CPU is taken from it.
    cpu_ms_per_session: {
      via_sidecar: { sidecar: Math.round(cpu.sidecar / runs), engine: Math.round(cpu.engineA / runs) },
      direct: { engine: Math.round(cpu.engineB / runs) },
      sidecar_share_of_engine: Math.round((cpu.sidecar / cpu.engineB) * 1000) / 1000,
    },
    // Medians of when things happened, ms after the session was asked for (POST /sessions, or createSession).
    phases_via_sidecar_median: medianPhases(phasesA),
    phases_direct_median: medianPhases(phasesB),
    sessionId,
  }
}

function medianPhases (runs: Phases[]): Phases {
  const out: Phases = {}
  for (const key of Object.keys(runs[0] ?? {})) out[key] = Math.round(median(runs.map(r => r[key])))
  return out
}

/** ms of the sidecar's GC pauses ([start, duration], epoch ms) that fall within [from, to]. */
function pausedWithin (pauses: Array<[number, number]>, from: number, to: number): number {
  let total = 0
  for (const [start, duration] of pauses) total += Math.max(0, Math.min(to, start + duration) - Math.max(from, start))
  return total
}

export function latencySummary (trackers: LatencyTracker[], gcPauses: Array<[number, number]> = []): Record<string, unknown> {
  const byKind: Record<string, number[]> = {}
  const slow: SlowSample[] = []
  const isolated: number[] = []
  let unmatched = 0
  for (const t of trackers) {
    const r = t.results()
    slow.push(...r.slow)
    isolated.push(...r.isolated)
    unmatched += r.unmatched
    for (const [kind, values] of Object.entries(r.byKind)) (byKind[kind] ??= []).push(...values)
  }
  const events = Object.entries(byKind).filter(([k]) => k !== 'idle_to_complete').flatMap(([, v]) => v)
  const kinds: Record<string, unknown> = {}
  for (const [kind, values] of Object.entries(byKind)) {
    kinds[kind] = { n: values.length, p50_ms: quantile(values, 0.5), p99_ms: quantile(values, 0.99), max_ms: quantile(values, 1) }
  }
  const round2 = (v: number | null): number | null => v === null ? null : Math.round(v * 100) / 100
  return {
    n: events.length,
    p50_ms: quantile(events, 0.5),
    p99_ms: quantile(events, 0.99),
    max_ms: quantile(events, 1),
    unmatched,
    isolated: { n: isolated.length, p50_ms: quantile(isolated, 0.5), p99_ms: quantile(isolated, 0.99) },
    by_kind: kinds,
    over_5ms: slow.sort((x, y) => y.latency_ms - x.latency_ms).map(s => ({
      kind: s.kind,
      latency_ms: round2(s.latency_ms),
      engine_gap_ms: round2(s.engine_gap_ms),
      // How long the sidecar was paused by its GC between the engine's event and the client's frame.
      sidecar_gc_ms: round2(pausedWithin(gcPauses, s.engine_at, s.sidecar_at)),
    })),
    sidecar_gc_pauses: {
      n: gcPauses.length,
      p50_ms: quantile(gcPauses.map(p => p[1]), 0.5),
      max_ms: quantile(gcPauses.map(p => p[1]), 1),
      over_2ms: gcPauses.filter(p => p[1] > 2).length,
    },
  }
}

/** Paced sessions (isolated events, nothing coalesced): engine event seen → sidecar SSE client. */
export async function measureLatency (ctx: SessionContext, runs: number, setTracker: (t: LatencyTracker | undefined) => void) {
  const trackers: LatencyTracker[] = []
  await ctx.sidecar.watchGc()
  for (let i = 0; i < runs; i++) {
    const tracker = new LatencyTracker()
    setTracker(tracker)
    await runViaSidecar(ctx, 'BENCH-LATENCY', tracker)
    setTracker(undefined)
    trackers.push(tracker)
  }
  return latencySummary(trackers, await ctx.sidecar.gcPauses())
}

function cmdline (pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()
  } catch {
    return ''
  }
}

/** DELETE while a `sleep 60` tool runs: → terminal event on the stream; → the sleep process gone. */
export async function measureCancel (ctx: SessionContext, runs: number) {
  const terminal: number[] = []
  const treeGone: number[] = []
  const response: number[] = []
  for (let i = 0; i < runs; i++) {
    const id = await createViaSidecar(ctx.url, 'BENCH-CANCEL', ctx.modelUrl)
    let sawToolCall!: () => void
    const toolCalled = new Promise<void>(resolve => { sawToolCall = resolve })
    let tTerminal = 0
    const stream = openSse(`${ctx.url}/sessions/${id}/stream`, {
      timeoutMs: 60_000,
      onFrame: (f) => {
        if (f.event === 'tool_call') sawToolCall()
        if (isTerminal(f)) tTerminal = f.t
      },
    })
    await toolCalled
    const sleeper = await poll<ProcInfo>(() => descendants(ctx.engine.pid).find(p => cmdline(p.pid) === 'sleep 60'), 10_000, 5, 'the sleep 60 tool process')
    const t0 = performance.now()
    let tGone = 0
    const gone = poll(() => isAlive(sleeper) ? undefined : (tGone = performance.now()), 10_000, 2, 'tool process exit')
    const res = await fetch(`${ctx.url}/sessions/${id}`, { method: 'DELETE' })
    response.push(performance.now() - t0)
    if (res.status !== 200) throw new Error(`cancel failed: ${res.status} ${await res.text()}`)
    await res.arrayBuffer()
    const frames = await stream.done
    await gone
    const last = frames.at(-1)
    if (last === undefined || !isTerminal(last)) throw new Error('no terminal event after cancel')
    terminal.push(tTerminal - t0)
    treeGone.push(tGone - t0)
  }
  return {
    runs,
    delete_response_ms: response,
    terminal_event_ms: terminal,
    tool_tree_gone_ms: treeGone,
    terminal_event_ms_median: median(terminal),
    tool_tree_gone_ms_median: median(treeGone),
  }
}

export function memorySample (ctx: SessionContext): { sidecar: number, engine: number, sidecarAnon: number, sidecarFile: number } {
  const parts = rssParts(ctx.sidecar.pid)
  return { sidecar: rssOf(ctx.sidecar.pid), engine: treeRss(ctx.engine.pid), sidecarAnon: parts.anon, sidecarFile: parts.file }
}

/** MAX_CONCURRENT_SESSIONS sessions at once with `clients` stream clients spread over them: peak RSS. */
export async function measureLoadedMemory (ctx: SessionContext, sessions: number, clients: number) {
  const ids = await Promise.all(Array.from({ length: sessions }, () => createViaSidecar(ctx.url, 'BENCH-MEMORY', ctx.modelUrl)))
  const streams = Array.from({ length: clients }, (_, i) => openSse(`${ctx.url}/sessions/${ids[i % sessions]}/stream`, { keep: false, timeoutMs: 120_000 }))
  let peak = { sidecar: 0, engine: 0, total: 0 }
  const sampling = { on: true }
  const sampler = (async () => {
    while (sampling.on) {
      const s = memorySample(ctx)
      peak = { sidecar: Math.max(peak.sidecar, s.sidecar), engine: Math.max(peak.engine, s.engine), total: Math.max(peak.total, s.sidecar + s.engine) }
      await sleep(100)
    }
  })()
  const statuses = await Promise.all(streams.map(s => s.opened))
  if (statuses.some(s => s !== 200)) throw new Error(`stream refused: ${statuses.join(',')}`)
  await Promise.all(streams.map(s => s.done))
  sampling.on = false
  await sampler
  return {
    sessions,
    clients,
    sidecar_peak_mb: peak.sidecar / MB,
    engine_peak_mb: peak.engine / MB,
    total_peak_mb: peak.total / MB,
  }
}
