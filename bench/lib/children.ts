import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

export interface EngineInfo {
  pid: number
  url: string
  password: string
  spawnedAt: number
  listeningAt: number
  readyAt: number
}

export interface Sidecar {
  child: ChildProcess
  pid: number
  /** Date.now() right before the spawn. */
  spawnedAt: number
  url: Promise<string>
  engine: Promise<EngineInfo>
  workspaceDir: string
  stateDir: string
  logFile: string
  /** Starts a bare Fastify hello-world inside the sidecar's process (bench/sidecar.ts); its URL. */
  innerHello: () => Promise<string>
  /** Starts recording the sidecar's GC pauses. */
  watchGc: () => Promise<void>
  /** Stops recording; the pauses since `watchGc`, [start (epoch ms), duration (ms)]. */
  gcPauses: () => Promise<Array<[number, number]>>
  stop: () => Promise<void>
}

export interface SidecarOptions {
  env?: Record<string, string>
  /** node flags, e.g. --cpu-prof */
  execArgv?: string[]
}

/** Every child still running, for the watchdog. */
export const running = new Set<ChildProcess>()

function track (child: ChildProcess): ChildProcess {
  running.add(child)
  child.once('exit', () => running.delete(child))
  return child
}

function exited (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise(resolve => child.once('exit', () => resolve()))
}

/** Sends `type` over IPC and waits for the first message of type `reply` (or the child's exit). */
async function ask<T> (child: ChildProcess, type: string, reply: string): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`sidecar exited (${code}) before answering ${type}`))
    const onMessage = (m: T & { type: string }): void => {
      if (m.type !== reply) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(m)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
    child.send({ type })
  })
}

/** The sidecar in its own process (honest RSS), logs to a file, state and workspace in a temp dir. */
export function spawnSidecar (script: string, opts: SidecarOptions = {}): Sidecar {
  const root = mkdtempSync(path.join(tmpdir(), 'ocs-bench-'))
  const workspaceDir = path.join(root, 'workspace')
  const stateDir = path.join(root, 'state')
  mkdirSync(workspaceDir)
  mkdirSync(stateDir)
  writeFileSync(path.join(workspaceDir, 'README.md'), '# bench workspace\n')
  const logFile = path.join(root, 'sidecar.log')
  const out = openSync(logFile, 'a')
  const spawnedAt = Date.now()
  const child = track(fork(script, [], {
    execArgv: opts.execArgv ?? [],
    stdio: ['ignore', out, out, 'ipc'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? root,
      LANG: process.env.LANG ?? 'C.UTF-8',
      WORKSPACE_DIR: workspaceDir,
      STATE_DIR: stateDir,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      MAX_CONCURRENT_SESSIONS: '5',
      ...opts.env,
    },
  }))
  const url = new Promise<string>((resolve, reject) => {
    child.on('message', (m: { type: string, port?: number }) => { if (m.type === 'listening') resolve(`http://127.0.0.1:${m.port}`) })
    child.once('exit', code => reject(new Error(`sidecar exited (${code}) before listening; see ${logFile}`)))
  })
  const engine = new Promise<EngineInfo>((resolve, reject) => {
    child.on('message', (m: EngineInfo & { type: string }) => { if (m.type === 'engine-ready') resolve(m) })
    child.once('exit', code => reject(new Error(`sidecar exited (${code}) before its engine was ready; see ${logFile}`)))
  })
  url.catch(() => {})
  engine.catch(() => {})
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    await exited(child)
    clearTimeout(timer)
    rmSync(root, { recursive: true, force: true })
  }
  const innerHello = async (): Promise<string> => {
    const m = await ask<{ port?: number, error?: string }>(child, 'start-inner-hello', 'inner-hello')
    if (!m.port) throw new Error(`in-process hello-world: ${m.error ?? 'no port'}`)
    return `http://127.0.0.1:${m.port}/`
  }
  const watchGc = async (): Promise<void> => { await ask(child, 'watch-gc', 'gc-watching') }
  const gcPauses = async (): Promise<Array<[number, number]>> =>
    (await ask<{ pauses: Array<[number, number]> }>(child, 'gc-pauses', 'gc-pauses')).pauses
  return { child, pid: child.pid!, spawnedAt, url, engine, workspaceDir, stateDir, logFile, innerHello, watchGc, gcPauses, stop }
}

export interface Server {
  child: ChildProcess
  url: string
  stop: () => Promise<void>
}

/** One of bench/servers.ts's modes in its own process. */
export async function startServer (script: string, mode: string, ...args: string[]): Promise<Server> {
  const child = track(fork(script, [mode, ...args], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const url = await new Promise<string>((resolve, reject) => {
    child.on('message', (m: { type: string, port: number }) => { if (m.type === 'listening') resolve(`http://127.0.0.1:${m.port}`) })
    child.once('exit', code => reject(new Error(`${mode} server exited (${code})`)))
  })
  return {
    child,
    url,
    stop: async () => {
      if (child.connected) child.disconnect()
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited(child)
      clearTimeout(timer)
    },
  }
}
