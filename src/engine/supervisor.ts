import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { accessSync, constants } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { delimiter, dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { createServer, type AddressInfo } from 'node:net'
import { OPENCODE_VERSION } from './binary.js'
import { EngineClient, EngineRequestError } from './client.js'
import { EngineEventStream, type EngineEvent } from './event-stream.js'
import { descendants, isAlive, processesWithEnv, signal, signalAll, type ProcInfo } from './process-tree.js'

export type EngineState = 'starting' | 'ready' | 'down' | 'stopping' | 'stopped'

/** The pino methods the supervisor uses. */
export interface EngineLogger {
  debug (obj: object, msg: string): void
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

export interface EngineSupervisorOptions {
  bin: string
  /** Absolute path; the engine's cwd and the `?directory=` of every call. */
  workspaceDir: string
  /** The engine's HOME lives in `<stateDir>/engine-home`. */
  stateDir: string
  /** Put in OPENCODE_CONFIG_CONTENT. Must hold no secret: the agent's bash can read it. */
  configContent: string
  /** Added last to the engine's environment (never a secret, same reason). */
  extraEnv?: Record<string, string>
  logger: EngineLogger
  /** Engine API password; a fresh random one per start when not given. */
  password?: string
  /** OPENCODE_PERMISSION: rules that never wait for an answer a headless server cannot give. */
  permission?: string
  /** Spawn → listening → instance warm → event stream connected. */
  startTimeoutMs?: number
  /** Default timeout of the client's requests. */
  requestTimeoutMs?: number
  healthIntervalMs?: number
  healthTimeoutMs?: number
  /** Consecutive failed health checks that mean "hung". */
  healthFailures?: number
  eventStaleMs?: number
  minRestartBackoffMs?: number
  maxRestartBackoffMs?: number
  /** Ready this long before a crash → the next restart is immediate-ish again. */
  stableAfterMs?: number
  /** SIGTERM → SIGKILL delay on stop. */
  stopGraceMs?: number
  /** Runs right before each spawn (e.g. a fresh gateway token for the new process to claim). */
  beforeSpawn?: () => void
}

export interface EngineReadyInfo {
  pid: number
  url: string
  /** Spawn → ready. */
  startupMs: number
  /** Spawn → "listening" line. */
  listeningMs: number
}

export interface EngineDownInfo {
  reason: string
  pid: number | undefined
}

export interface EngineSupervisorEvents {
  ready: [EngineReadyInfo]
  /** The engine stopped serving; whatever it was running is lost (fail those sessions: engine_crashed). */
  down: [EngineDownInfo]
  event: [EngineEvent]
  /** The event stream came back after a loss: events may be missing, reconcile from the engine. */
  resync: []
}

/**
 * Environment variable (not a secret) that tags an engine process and, by inheritance, every
 * tool it runs: `<stateDir>#<spawn id>`. Its processes are found by it after a crash, and those
 * of a dead sidecar with the same STATE_DIR at the next start.
 */
export const ENGINE_MARKER = 'OPENCODE_SERVER_ENGINE'

/** Kills every process left by an earlier engine of this STATE_DIR (e.g. a sidecar killed with SIGKILL). */
export function killOrphans (stateDir: string): number {
  const orphans = processesWithEnv(ENGINE_MARKER, value => value.startsWith(`${stateDir}#`))
  signalAll(orphans, 'SIGKILL')
  return orphans.length
}

export const HEADLESS_PERMISSION = JSON.stringify({ '*': 'allow', external_directory: 'allow', doom_loop: 'allow', question: 'deny' })

const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']
const LISTENING = /opencode server listening on (http:\/\/\S+)/

/** The absolute path of `name` on `PATH`, if any. */
export function findOnPath (name: string, path: string = process.env.PATH ?? ''): string | undefined {
  for (const dir of [...path.split(delimiter), ...SYSTEM_PATH]) {
    if (dir === '') continue
    const file = join(dir, name)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return undefined
}

/**
 * How the engine gets its API password. Isolated on purpose: the engine (1.18.33) reads it only
 * from its environment, which the agent's bash can read through /proc/<engine pid>/environ.
 */
export function passwordEnv (password: string): Record<string, string> {
  return { OPENCODE_SERVER_PASSWORD: password }
}

/** The engine's whole environment: built from scratch, never from process.env. */
export function buildEngineEnv (opts: {
  home: string
  configContent: string
  permission: string
  password: string
  ripgrep: string | undefined
  /** Marks the engine and everything it starts (see ENGINE_MARKER). */
  marker: string
  extraEnv?: Record<string, string>
}): Record<string, string> {
  const path = [...new Set([
    ...(opts.ripgrep === undefined ? [] : [dirname(opts.ripgrep)]),
    dirname(process.execPath),
    ...SYSTEM_PATH,
  ])]
  return {
    PATH: path.join(delimiter),
    HOME: opts.home,
    XDG_CONFIG_HOME: join(opts.home, '.config'),
    XDG_DATA_HOME: join(opts.home, '.local', 'share'),
    XDG_STATE_HOME: join(opts.home, '.local', 'state'),
    XDG_CACHE_HOME: join(opts.home, '.cache'),
    LANG: process.env.LANG ?? 'C.UTF-8',
    TZ: process.env.TZ ?? 'UTC',
    OPENCODE_DISABLE_MODELS_FETCH: '1',
    OPENCODE_DISABLE_AUTOUPDATE: '1',
    OPENCODE_DISABLE_SHARE: '1',
    OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
    OPENCODE_PERMISSION: opts.permission,
    OPENCODE_CONFIG_CONTENT: opts.configContent,
    [ENGINE_MARKER]: opts.marker,
    ...passwordEnv(opts.password),
    ...opts.extraEnv,
  }
}

/**
 * Seeds `$HOME/.config/opencode` as if `@opencode-ai/plugin` were installed, so loading any plugin
 * never starts an `npm install` (7–70 s, online) at instance boot.
 */
export async function seedEngineHome (home: string): Promise<void> {
  const configDir = join(home, '.config', 'opencode')
  await mkdir(join(configDir, 'node_modules'), { recursive: true })
  const deps = { '@opencode-ai/plugin': OPENCODE_VERSION }
  await writeFile(join(configDir, 'package.json'), JSON.stringify({ dependencies: deps }))
  await writeFile(join(configDir, 'package-lock.json'), JSON.stringify({ lockfileVersion: 3, packages: { '': { dependencies: deps } } }))
}

/** A port the kernel just handed out (and took back): free unless someone races for it. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** Resolves when `child` has exited (at once if it already has), or after `ms`. */
function waitExit (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise(resolve => {
    const timer = setTimeout(() => {
      child.off('exit', onExit)
      resolve(false)
    }, ms)
    const onExit = (): void => {
      clearTimeout(timer)
      resolve(true)
    }
    child.once('exit', onExit)
  })
}

/**
 * Runs the one `opencode serve` child: start, warm, connect events, watch (health checks, exit,
 * event stream), restart with backoff, stop with nothing left behind.
 */
export class EngineSupervisor extends EventEmitter<EngineSupervisorEvents> {
  /** Where ripgrep is, if the machine has it (without it the engine's grep/glob tools fail offline). */
  readonly ripgrep: string | undefined
  readonly #opts: Required<Omit<EngineSupervisorOptions, 'extraEnv' | 'password' | 'beforeSpawn'>> & Pick<EngineSupervisorOptions, 'extraEnv' | 'password' | 'beforeSpawn'>
  readonly #log: EngineLogger
  #state: EngineState = 'stopped'
  #notReadyReason: string | undefined = 'engine not started'
  #started = false
  /** Bumped whenever the current engine is given up: callbacks of an older one are ignored. */
  #generation = 0
  #child: ChildProcess | undefined
  #client: EngineClient | undefined
  #launchClient: EngineClient | undefined
  #stream: EngineEventStream | undefined
  #url: string | undefined
  #healthTimer: NodeJS.Timeout | undefined
  #restartTimer: NodeJS.Timeout | undefined
  #failures = 0
  #restarts = 0
  #readySince = 0
  #knownDescendants = new Map<number, ProcInfo>()
  /** ENGINE_MARKER value of the current engine process. */
  #marker = ''
  #stopping: Promise<void> | undefined
  readonly #stopSignal = new AbortController()

  constructor (opts: EngineSupervisorOptions) {
    super()
    this.#opts = {
      permission: HEADLESS_PERMISSION,
      startTimeoutMs: 60_000,
      requestTimeoutMs: 10_000,
      healthIntervalMs: 5_000,
      healthTimeoutMs: 3_000,
      healthFailures: 3,
      eventStaleMs: 25_000,
      minRestartBackoffMs: 500,
      maxRestartBackoffMs: 30_000,
      stableAfterMs: 60_000,
      stopGraceMs: 5_000,
      ...opts,
    }
    this.#log = opts.logger
    this.ripgrep = findOnPath('rg')
  }

  get state (): EngineState {
    return this.#state
  }

  /** Why the engine is not ready (for /ready); undefined when ready. */
  get notReadyReason (): string | undefined {
    return this.#notReadyReason
  }

  get ready (): boolean {
    return this.#state === 'ready'
  }

  get pid (): number | undefined {
    return this.#child?.pid
  }

  get url (): string | undefined {
    return this.#url
  }

  /** The client of the running engine; undefined unless ready. A restart makes a new one. */
  get client (): EngineClient | undefined {
    return this.#client
  }

  /** Restarts since start() (crashes, hangs, failed starts). */
  get restarts (): number {
    return this.#restarts
  }

  /** Starts the engine and supervises it until stop(). Does not wait: see waitReady(). */
  start (): void {
    if (this.#started) throw new Error('engine supervisor already started')
    this.#started = true
    if (this.ripgrep === undefined) {
      this.#log.warn({}, 'ripgrep (rg) is not on PATH: the engine\'s grep and glob tools will fail offline')
    }
    this.#relaunch()
  }

  #relaunch (): void {
    this.#launch().catch(err => this.#log.error({ err: errorMessage(err) }, 'engine launch crashed'))
  }

  /** Resolves when the engine is ready (now or next); rejects after `timeoutMs` or on stop(). */
  async waitReady (timeoutMs = this.#opts.startTimeoutMs): Promise<void> {
    if (this.#state === 'ready') return
    if (this.#state === 'stopping' || this.#state === 'stopped') throw new Error(`engine is ${this.#state}`)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('ready', onReady)
        reject(new Error(`engine not ready within ${timeoutMs} ms: ${this.#notReadyReason ?? this.#state}`))
      }, timeoutMs)
      const onReady = (): void => {
        clearTimeout(timer)
        this.#stopSignal.signal.removeEventListener('abort', onStop)
        resolve()
      }
      const onStop = (): void => {
        clearTimeout(timer)
        this.off('ready', onReady)
        reject(new Error('engine supervisor stopped'))
      }
      this.once('ready', onReady)
      this.#stopSignal.signal.addEventListener('abort', onStop, { once: true })
    })
  }

  #setState (state: EngineState, notReadyReason: string | undefined): void {
    this.#state = state
    this.#notReadyReason = notReadyReason
  }

  async #launch (): Promise<void> {
    const gen = ++this.#generation
    const { bin, workspaceDir, startTimeoutMs } = this.#opts
    this.#setState('starting', 'engine starting')
    const home = join(this.#opts.stateDir, 'engine-home')
    try {
      await seedEngineHome(home)
    } catch (err) {
      this.#fail(gen, `cannot prepare engine home ${home}: ${errorMessage(err)}`)
      return
    }
    if (gen !== this.#generation) return
    const password = this.#opts.password ?? randomBytes(32).toString('base64url')
    const marker = `${this.#opts.stateDir}#${randomBytes(8).toString('hex')}`
    const started = performance.now()
    const deadline = Date.now() + startTimeoutMs
    let child: ChildProcess
    try {
      this.#opts.beforeSpawn?.()
      // `--port 0` takes 4096 whenever it is free, so a restarted engine would reuse the address
      // of the dead one (and stale keep-alive sockets to it): each spawn asks for a fresh port.
      child = spawn(bin, ['serve', '--port', String(await freePort()), '--hostname', '127.0.0.1'], {
        cwd: workspaceDir,
        // Its own process group: one signal reaches the engine and the tools that stay in its group.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: buildEngineEnv({ home, password, marker, ripgrep: this.ripgrep, ...this.#opts }),
      })
    } catch (err) {
      this.#fail(gen, `cannot spawn ${bin}: ${errorMessage(err)}`)
      return
    }
    this.#child = child
    this.#marker = marker
    this.#knownDescendants.clear()
    this.#url = undefined
    const pid = child.pid
    child.once('error', err => this.#fail(gen, `engine process error: ${err.message}`))
    child.once('exit', (code, sig) => this.#fail(gen, `engine exited (${sig === null ? `code ${code}` : sig})`))
    const listening = new Promise<string>((resolve, reject) => {
      child.once('exit', () => reject(new Error('engine exited before listening')))
      child.once('error', reject)
      for (const [name, stream] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
        if (stream === null) continue
        createInterface({ input: stream, crlfDelay: Infinity }).on('line', line => {
          this.#log.debug({ engine: name, pid }, line)
          const match = name === 'stdout' ? LISTENING.exec(line) : null
          if (match?.[1] !== undefined) resolve(match[1])
        })
      }
    })
    try {
      const url = await withTimeout(listening, startTimeoutMs, 'no "listening" line')
      const listeningMs = performance.now() - started
      if (gen !== this.#generation) return
      this.#url = url
      const client = new EngineClient({ baseUrl: url, directory: workspaceDir, password, timeoutMs: this.#opts.requestTimeoutMs })
      this.#launchClient = client
      await this.#warm(client, deadline)
      if (gen !== this.#generation) return
      const stream = new EngineEventStream({
        client,
        logger: this.#log,
        staleMs: this.#opts.eventStaleMs,
        connectTimeoutMs: this.#opts.requestTimeoutMs,
      })
      this.#stream = stream
      stream.on('event', event => this.emit('event', event))
      stream.on('reconnected', () => {
        this.#log.info({ pid }, 'engine event stream reconnected')
        this.emit('resync')
      })
      stream.on('disconnected', ({ reason }) => {
        this.#onStreamLost(gen, reason).catch(err => this.#log.error({ err: errorMessage(err) }, 'engine stream check crashed'))
      })
      await stream.start(Math.max(1, deadline - Date.now()))
      if (gen !== this.#generation) return
      const startupMs = Math.round(performance.now() - started)
      this.#client = client
      this.#readySince = Date.now()
      this.#failures = 0
      this.#setState('ready', undefined)
      this.#scheduleHealth(gen)
      this.#log.info({ pid, url, startupMs, listeningMs: Math.round(listeningMs) }, 'engine ready')
      this.emit('ready', { pid: pid ?? -1, url, startupMs, listeningMs: Math.round(listeningMs) })
    } catch (err) {
      this.#fail(gen, `engine start failed: ${errorMessage(err)}`)
    }
  }

  /** Boots the workspace instance now rather than inside the first session's request. */
  async #warm (client: EngineClient, deadline: number): Promise<void> {
    for (;;) {
      try {
        await client.paths({ timeoutMs: Math.max(1, deadline - Date.now()) })
        return
      } catch (err) {
        if (!(err instanceof EngineRequestError) || err.kind !== 'network' || Date.now() + 200 >= deadline) throw err
        this.#log.debug({ err: err.message }, 'engine warm-up retry')
        await sleep(200)
      }
    }
  }

  #scheduleHealth (gen: number): void {
    this.#healthTimer = setTimeout(() => {
      this.#healthCheck(gen).catch(err => this.#log.error({ err: errorMessage(err) }, 'engine health check crashed'))
    }, this.#opts.healthIntervalMs)
  }

  async #healthCheck (gen: number): Promise<void> {
    const pid = this.#child?.pid
    if (this.#child !== undefined) this.#rememberDescendants(this.#child)
    const ok = await this.#probe()
    if (gen !== this.#generation) return
    if (ok) {
      this.#failures = 0
    } else {
      this.#failures++
      this.#log.warn({ pid, failures: this.#failures }, 'engine health check failed')
      if (this.#failures >= this.#opts.healthFailures) {
        this.#fail(gen, `engine hung: ${this.#failures} health checks in a row got no answer within ${this.#opts.healthTimeoutMs} ms`)
        return
      }
    }
    this.#scheduleHealth(gen)
  }

  /** A workspace-instance call: proves the engine's loop and the instance both answer. */
  /** Remembered so that tools outliving their parent (orphans, own session) can still be killed. */
  #rememberDescendants (child: ChildProcess): void {
    if (child.pid === undefined) return
    for (const proc of descendants(child.pid)) this.#knownDescendants.set(proc.pid, proc)
    for (const [known, proc] of this.#knownDescendants) if (!isAlive(proc)) this.#knownDescendants.delete(known)
  }

  async #probe (): Promise<boolean> {
    try {
      await this.#launchClient?.sessionStatus({ timeoutMs: this.#opts.healthTimeoutMs })
      return this.#launchClient !== undefined
    } catch {
      return false
    }
  }

  async #onStreamLost (gen: number, reason: string): Promise<void> {
    if (gen !== this.#generation || this.#state !== 'ready') return
    this.#log.warn({ pid: this.pid, reason }, 'engine event stream lost, reconnecting')
    if (await this.#probe()) return
    this.#fail(gen, `engine event stream lost (${reason}) and the engine does not answer`)
  }

  /** Gives up the current engine (generation `gen`): down, kill what is left, restart after backoff. */
  #fail (gen: number, reason: string): void {
    if (gen !== this.#generation || this.#stopping !== undefined) return
    this.#generation++
    const child = this.#child
    const pid = child?.pid
    if (this.#state === 'ready' && Date.now() - this.#readySince >= this.#opts.stableAfterMs) this.#restarts = 0
    const delay = Math.min(this.#opts.minRestartBackoffMs * 2 ** this.#restarts, this.#opts.maxRestartBackoffMs)
    this.#restarts++
    this.#teardown()
    this.#setState('down', reason)
    this.#log.error({ pid, reason, restartInMs: delay }, 'engine down')
    this.emit('down', { reason, pid })
    const restartGen = this.#generation
    const restart = async (): Promise<void> => {
      if (child !== undefined) {
        await this.#killTree(child, false)
        // Never signal its pid again: once its group is empty the kernel may reuse the number.
        if (this.#child === child) this.#child = undefined
      }
      if (restartGen !== this.#generation || this.#stopping !== undefined) return
      this.#restartTimer = setTimeout(() => {
        if (restartGen === this.#generation && this.#stopping === undefined) this.#relaunch()
      }, delay)
    }
    restart().catch(err => this.#log.error({ err: errorMessage(err) }, 'engine restart crashed'))
  }

  #teardown (): void {
    clearTimeout(this.#healthTimer)
    clearTimeout(this.#restartTimer)
    this.#stream?.stop()
    this.#stream = undefined
    this.#client = undefined
  }

  /**
   * Ends the engine and every process it started. Descendants are found through /proc before any
   * signal (a tool may run in its own process group, and an orphan loses its parent link).
   */
  async #killTree (child: ChildProcess, graceful: boolean): Promise<void> {
    const pid = child.pid
    if (pid === undefined) return
    const procs = new Map(this.#knownDescendants)
    const marker = this.#marker
    const collect = (): void => {
      for (const proc of descendants(pid)) procs.set(proc.pid, proc)
      // Tools orphaned by a crashed engine are no longer its descendants; its marker still finds them.
      for (const proc of processesWithEnv(ENGINE_MARKER, value => value === marker)) if (proc.pid !== pid) procs.set(proc.pid, proc)
    }
    collect()
    if (graceful) {
      signal(-pid, 'SIGTERM')
      signalAll([...procs.values()], 'SIGTERM')
      await waitExit(child, this.#opts.stopGraceMs)
      collect()
    }
    signal(-pid, 'SIGKILL')
    signalAll([...procs.values()], 'SIGKILL')
    // A stopped (SIGSTOP) process still dies of SIGKILL.
    if (!await waitExit(child, 5_000)) this.#log.error({ pid }, 'engine did not exit after SIGKILL')
    const until = Date.now() + 5_000
    let left = [...procs.values()].filter(isAlive)
    while (left.length > 0 && Date.now() < until) {
      await sleep(50)
      left = left.filter(isAlive)
    }
    if (left.length > 0) this.#log.error({ pid, left: left.map(p => p.pid) }, 'engine descendants survived SIGKILL')
    this.#knownDescendants.clear()
  }

  /** Dispose (aborts sessions, kills tool trees), SIGTERM the group, SIGKILL after the grace time. */
  async stop (): Promise<void> {
    if (this.#stopping !== undefined) return await this.#stopping
    this.#stopping = (async () => {
      this.#generation++
      this.#teardown()
      this.#setState('stopping', 'engine stopping')
      this.#stopSignal.abort()
      const child = this.#child
      const running = child !== undefined && child.exitCode === null && child.signalCode === null
      // Before dispose: it kills tool trees, and a tool in its own session would then be orphaned,
      // out of reach of a later walk from the engine.
      if (running) this.#rememberDescendants(child)
      if (running && this.#launchClient !== undefined) {
        try {
          await this.#launchClient.dispose({ timeoutMs: 2_000 })
        } catch (err) {
          this.#log.warn({ err: errorMessage(err) }, 'engine dispose failed')
        }
      }
      if (child !== undefined) await this.#killTree(child, running)
      this.#launchClient = undefined
      this.#setState('stopped', 'engine stopped')
      this.#log.info({ pid: child?.pid }, 'engine stopped')
    })()
    await this.#stopping
  }
}

async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
