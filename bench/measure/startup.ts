import http from 'node:http'
import { createServer } from 'node:net'
import { spawnSidecar, type Sidecar } from '../lib/children.js'
import { median, poll } from '../lib/stats.js'

export interface StartupRun {
  healthz_ms: number
  ready_ms: number
  /** Sidecar spawn → the engine's spawn, "listening" line, and its supervisor's ready. */
  engine_spawn_ms: number
  engine_listening_ms: number
  engine_ready_ms: number
  /** /ready 200 minus the engine's own start-up (its "listening" line). */
  ready_after_engine_listening_ms: number
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** A probe on node:http with a hard deadline (a fetch here once hung past its AbortSignal.timeout). */
function status (url: string, timeoutMs = 2000): Promise<number | undefined> {
  return new Promise(resolve => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume()
      res.on('end', () => { clearTimeout(timer); resolve(res.statusCode) })
      res.on('error', () => { clearTimeout(timer); resolve(undefined) })
    })
    const timer = setTimeout(() => { req.destroy(); resolve(undefined) }, timeoutMs)
    req.on('error', () => { clearTimeout(timer); resolve(undefined) })
  })
}

/** Spawns the sidecar and times its probes; returns the running sidecar with the timings. */
export async function startMeasured (script: string, execArgv: string[] = []): Promise<{ sidecar: Sidecar, url: string, run: StartupRun }> {
  const port = await freePort()
  const sidecar = spawnSidecar(script, { env: { PORT: String(port) }, execArgv })
  const url = `http://127.0.0.1:${port}`
  try {
    await poll(async () => (await status(`${url}/healthz`)) === 200 ? true : undefined, 20_000, 5, '/healthz 200')
    const healthz = Date.now() - sidecar.spawnedAt
    await poll(async () => (await status(`${url}/ready`)) === 200 ? true : undefined, 90_000, 20, '/ready 200')
    const ready = Date.now() - sidecar.spawnedAt
    const engine = await withDeadline(sidecar.engine, 30_000, 'the engine-ready message')
    const run: StartupRun = {
      healthz_ms: healthz,
      ready_ms: ready,
      engine_spawn_ms: engine.spawnedAt - sidecar.spawnedAt,
      engine_listening_ms: engine.listeningAt - sidecar.spawnedAt,
      engine_ready_ms: engine.readyAt - sidecar.spawnedAt,
      ready_after_engine_listening_ms: ready - (engine.listeningAt - sidecar.spawnedAt),
    }
    return { sidecar, url, run }
  } catch (err) {
    await sidecar.stop()
    throw err
  }
}

async function withDeadline<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

export function summarizeStartup (runs: StartupRun[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const key of Object.keys(runs[0]) as Array<keyof StartupRun>) out[`${key}_median`] = median(runs.map(r => r[key]))
  // The engine's own start-up, spawn → "listening" line, for comparison.
  out.engine_own_listening_ms_median = median(runs.map(r => r.engine_listening_ms - r.engine_spawn_ms))
  return out
}
