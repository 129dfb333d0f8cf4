import fs from 'node:fs'
import type { ServerResponse } from 'node:http'
import path from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import { ServiceError } from '../errors.js'
import { EventLog } from '../events/event-log.js'
import { ReplayLogs } from '../events/replay-logs.js'
import { StreamLimitError, StreamRegistry } from '../events/stream-registry.js'
import type { SessionEventType } from '../events/types.js'
import { ProviderGateway } from '../gateway/gateway.js'
import { ENGINE_PROVIDER, PLACEHOLDER_MODEL, engineConfig } from '../gateway/engine-config.js'
import { pluginSource } from '../gateway/plugin.js'
import type { SessionRoute } from '../gateway/providers.js'
import { EngineSupervisor, killOrphans, type EngineDownInfo } from '../engine/supervisor.js'
import type { EngineEvent } from '../engine/event-stream.js'
import type { EngineClient } from '../engine/client.js'
import { checkVersion, resolveOpencodeBin } from '../engine/binary.js'
import type { CancelBodyType, CreateSessionBodyType, SessionStatusType } from '../../schemas/session.js'
import { EventMapper, type EnginePart } from './mapper.js'
import type { SessionService } from './service.js'
import { SessionStore, type SessionRecord } from './store.js'
import { engineToolIds, promptToolMap } from './tools.js'
import { checkCreateRequest } from './validate.js'
import { Metrics } from '../metrics.js'
import { PROBE_PREFIX, checkDirectory } from '../readiness.js'
import { changedFiles, snapshotWorkspace, type WorkspaceSnapshot } from './workspace-changes.js'

type Ending =
  | { kind: 'completed' }
  | { kind: 'cancelled', code?: string, message?: string }
  | { kind: 'failed', code: string, message: string }

/** A session this process runs: its persisted record plus what lives only in memory. */
interface Live {
  record: SessionRecord
  log: EventLog
  route: SessionRoute
  mapper: EventMapper
  engineId: string
  startedAt: number
  /** The workspace before the session ran: files changed through bash are found against it. */
  before: WorkspaceSnapshot | undefined
  /** The first fatal engine error, reported when the engine goes idle. */
  engineError?: { code: string, message: string }
  /** Whether the agent's first output or tool call was seen (time-to-first-event metric). */
  firstEventSeen?: boolean
  /** The engine's event stream was re-established during the session (events may have been missed). */
  resynced?: boolean
  /** Set when the sidecar asked the engine to stop (cancel, timeout, shutdown). */
  stopping?: Ending
  timeout?: NodeJS.Timeout
  idle: Promise<void>
  markIdle: () => void
  finished?: Promise<void>
}

const ACTIVE = new Set(['pending', 'running'])
const RETRY_AFTER_BUSY = 10
const RETRY_AFTER_NOT_READY = 5
const IDLE_WAIT_MS = 5000

const now = () => new Date().toISOString()
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null

/** Provider error names the engine reports, as contract error codes. */
function engineErrorCode (name: string, status: unknown): string {
  if (name === 'ProviderAuthError' || status === 401 || status === 403) return 'provider_auth'
  if (name === 'ContextOverflowError') return 'context_overflow'
  if (name === 'MessageOutputLengthError') return 'output_length'
  if (name === 'APIError') return 'provider_error'
  return 'engine_error'
}

export class SessionManager implements SessionService {
  private readonly store: SessionStore
  private readonly records = new Map<string, SessionRecord>()
  private readonly live = new Map<string, Live>()
  /** Engine session id → root engine session id (subagents' sessions map to their parent). */
  private readonly parents = new Map<string, string>()
  private readonly byEngineId = new Map<string, Live>()
  private readonly streams: StreamRegistry
  private readonly replays = new ReplayLogs()
  private readonly gateway: ProviderGateway
  private engine?: EngineSupervisor
  private engineStarting?: Promise<void>
  /** Why the engine cannot run at all (binary missing, wrong version). */
  private engineProblem?: string
  /** Model ids the engine's catalog knows, per engine provider id (read once it is ready). */
  private knownModels = new Map<string, Set<string>>()
  private shuttingDown = false
  private sweepTimer?: NodeJS.Timeout
  readonly metrics: Metrics

  constructor (private readonly config: Config, private readonly log: FastifyBaseLogger) {
    this.metrics = new Metrics({
      sessionsByState: () => {
        const counts: Record<string, number> = { pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0 }
        for (const record of this.records.values()) counts[record.status]++
        return counts
      },
      activeStreams: () => this.streams.count(),
      slowClientsDisconnected: () => this.streams.slowClientsDisconnected,
      engineRestarts: () => this.engine?.restarts ?? 0,
    })
    this.store = new SessionStore(config.stateDir)
    this.streams = new StreamRegistry({
      maxClientsPerSession: config.maxStreamClientsPerSession,
      maxClients: config.maxStreamClients,
      client: { heartbeatMs: config.heartbeatMs },
    })
    this.gateway = new ProviderGateway({ resolve: id => this.resolveRoute(id), log })
  }

  /**
   * Recovers the stored sessions and starts the gateway; the engine starts in the background
   * (seconds), so the server listens and answers liveness at once while /ready says why not yet.
   */
  async start (): Promise<void> {
    this.store.init()
    this.recover()
    await this.gateway.start()
    this.sweepTimer = setInterval(() => { this.sweep().catch(err => this.log.warn({ err }, 'retention sweep failed')) }, 60_000)
    this.sweepTimer.unref()
    this.engineStarting = this.startEngine().catch(err => {
      this.engineProblem = (err as Error).message
      this.log.error({ err: this.engineProblem }, 'the OpenCode engine cannot run')
    })
  }

  private async startEngine (): Promise<void> {
    const bin = resolveOpencodeBin({ OPENCODE_BIN: this.config.opencodeBin })
    await checkVersion(bin)
    if (this.shuttingDown) return
    const orphans = killOrphans(this.config.stateDir)
    if (orphans) this.log.warn({ processes: orphans }, 'killed processes left by an earlier engine of this STATE_DIR')
    const engineDir = path.join(this.config.stateDir, 'engine')
    fs.mkdirSync(engineDir, { recursive: true, mode: 0o700 })
    const pluginFile = path.join(engineDir, 'opencode-server-plugin.js')
    fs.writeFileSync(pluginFile, pluginSource(this.gateway.url), { mode: 0o600 })
    this.engine = new EngineSupervisor({
      bin,
      workspaceDir: this.config.workspaceDir,
      stateDir: this.config.stateDir,
      configContent: JSON.stringify(engineConfig(this.gateway.url, pluginFile)),
      logger: this.log.child({ component: 'engine' }),
      beforeSpawn: () => this.gateway.rotate(),
    })
    this.engine.on('event', (event: EngineEvent) => this.onEngineEvent(event))
    this.engine.on('down', (info: EngineDownInfo) => this.onEngineDown(info.reason))
    this.engine.on('ready', () => { this.loadCatalog().catch(err => this.log.warn({ err }, 'could not read the engine\'s model catalog')) })
    this.engine.on('resync', () => { this.reconcileAll().catch(err => this.log.warn({ err }, 'reconcile failed')) })
    this.engine.start()
  }

  /** Why sessions cannot start, in words fit for clients (details such as paths go to the log only). */
  notReadyReason (): string | null {
    if (this.shuttingDown) return 'shutting down'
    if (this.engineProblem) return 'engine unavailable (binary missing or wrong version; see the sidecar log)'
    if (!this.engine) return 'engine starting'
    switch (this.engine.state) {
      case 'ready': break
      case 'starting': return 'engine starting'
      case 'down': return 'engine down, restarting'
      default: return `engine ${this.engine.state}`
    }
    if (!this.gateway.ready) return 'engine has not loaded the opencode-server plugin'
    return null
  }

  // ---- requests ----

  async create (request: CreateSessionBodyType): Promise<SessionStatusType> {
    checkCreateRequest(request)
    const id = request.session_id.toLowerCase()
    if (this.records.has(id)) throw new ServiceError('conflict', `Session ${id} already exists`, { session_id: id })
    const notReady = this.notReadyReason() ??
      (await Promise.all([checkDirectory(this.config.workspaceDir), checkDirectory(this.config.stateDir, 'state')])).find(r => r !== null) ??
      null
    if (notReady) throw new ServiceError('not_ready', `Not ready: ${notReady}`, undefined, RETRY_AFTER_NOT_READY)
    // Again after the awaits: a concurrent request may have taken the id meanwhile.
    if (this.records.has(id)) throw new ServiceError('conflict', `Session ${id} already exists`, { session_id: id })
    // Counted on the records: a session still starting (between its reservation and the engine's
    // answer) holds a slot too.
    const active = [...this.records.values()].filter(r => ACTIVE.has(r.status)).length
    if (active >= this.config.maxConcurrentSessions) {
      throw new ServiceError('capacity', `At capacity: ${this.config.maxConcurrentSessions} sessions are running`, { max_concurrent_sessions: this.config.maxConcurrentSessions }, RETRY_AFTER_BUSY)
    }
    const mc = request.model_config
    const created = now()
    const record: SessionRecord = {
      session_id: id,
      status: 'pending',
      progress: 0,
      created_at: created,
      started_at: null,
      updated_at: created,
      finished_at: null,
      cancelled_at: null,
      model: { provider: mc.provider, model: mc.model },
      final_message: null,
      files_modified: [],
      error: null,
      usage: null,
      last_event_id: 0,
      engine_session_id: null,
    }
    const route: SessionRoute = {
      provider: mc.provider,
      model: mc.model,
      apiKey: mc.api_key,
      temperature: mc.temperature,
      maxTokens: mc.max_tokens,
      apiEndpoint: mc.api_endpoint ?? undefined,
      modelVersion: mc.model_version ?? undefined,
      allowedTools: engineToolIds(mc.enabled_tools),
    }
    // Reserve the id and the slot before the first await.
    this.records.set(id, record)
    let log: EventLog | undefined
    try {
      this.store.save(record)
      log = EventLog.open(this.store.eventsFile(id))
      const before = snapshotWorkspace(this.config.workspaceDir).then(s => s.files, () => undefined)
      const client = this.client()
      const engineSession = await client.createSession(`opencode-server ${id}`)
      let markIdle!: () => void
      const idle = new Promise<void>(resolve => { markIdle = resolve })
      const live: Live = {
        record,
        log,
        route,
        mapper: new EventMapper((event, data) => this.emit(live, event, data), this.config.workspaceDir),
        engineId: engineSession.id,
        startedAt: Date.now(),
        before: await before,
        idle,
        markIdle,
      }
      record.engine_session_id = engineSession.id
      this.live.set(id, live)
      this.byEngineId.set(engineSession.id, live)
      this.emit(live, 'status', { status: 'pending', progress: 0 })
      await client.promptAsync(engineSession.id, {
        parts: [{ type: 'text', text: request.prompt }],
        model: { providerID: ENGINE_PROVIDER[mc.provider], modelID: this.engineModelId(mc.provider, mc.model) },
        ...(request.system_prompt ? { system: request.system_prompt } : {}),
        tools: promptToolMap(route.allowedTools),
      })
      if (live.stopping || live.finished) return this.view(record)
      record.status = 'running'
      record.started_at = now()
      this.save(live)
      this.emit(live, 'status', { status: 'running', progress: 0 })
      this.metrics.sessionsCreated.inc()
      live.timeout = setTimeout(() => this.stop(live, { kind: 'failed', code: 'timeout', message: `Session exceeded SESSION_TIMEOUT (${this.config.sessionTimeoutMs / 1000} s)` }), this.config.sessionTimeoutMs)
      live.timeout.unref()
      this.log.info({ sessionId: id, engineSessionId: engineSession.id, provider: mc.provider, model: mc.model }, 'session started')
      return this.view(record)
    } catch (err) {
      // Nothing of a session that never started is kept: the client may retry with the same id.
      const live = this.live.get(id)
      if (live) {
        this.live.delete(id)
        this.byEngineId.delete(live.engineId)
        this.engine?.client?.abort(live.engineId).catch(() => {})
      }
      log?.close()
      this.records.delete(id)
      await this.store.remove(id)
      if (err instanceof ServiceError) throw err
      this.log.error({ err, sessionId: id }, 'engine refused the session')
      throw new ServiceError('engine', 'The OpenCode engine could not start the session')
    }
  }

  status (sessionId: string): SessionStatusType {
    return this.view(this.get(sessionId))
  }

  /** The status, or undefined for an unknown session (the fast path's lookup: no error built). */
  findStatus (sessionId: string): SessionStatusType | undefined {
    const record = this.records.get(sessionId.toLowerCase())
    return record && this.view(record)
  }

  async cancel (sessionId: string): Promise<CancelBodyType> {
    const record = this.get(sessionId)
    const live = this.live.get(record.session_id)
    if (live) await this.stop(live, { kind: 'cancelled', message: 'Cancelled by request' })
    if (record.status !== 'cancelled' || !record.cancelled_at) {
      throw new ServiceError('conflict', `Session ${record.session_id} already ended as ${record.status}`, { status: record.status })
    }
    return { session_id: record.session_id, status: 'cancelled', cancelled_at: record.cancelled_at }
  }

  async stream (sessionId: string, afterId: number, res: ServerResponse): Promise<void> {
    const record = this.get(sessionId)
    const refusal = this.streams.check(record.session_id)
    if (refusal) throw this.streamRefusal(refusal)
    const live = this.live.get(record.session_id)
    if (live) {
      this.streams.attach(record.session_id, { log: live.log, res, afterId })
      return
    }
    const lease = await this.replays.acquire(this.store.eventsFile(record.session_id))
    try {
      this.streams.attach(record.session_id, { log: lease.log, res, afterId, onClose: () => lease.release() })
    } catch (err) {
      lease.release()
      throw err instanceof StreamLimitError ? this.streamRefusal(err) : err
    }
  }

  async shutdown (): Promise<void> {
    this.shuttingDown = true
    if (this.sweepTimer) clearInterval(this.sweepTimer)
    await Promise.all([...this.live.values()].map(live =>
      this.stop(live, { kind: 'cancelled', code: 'shutdown', message: 'The sidecar is shutting down' })))
    await this.streams.closeAll()
  }

  async close (): Promise<void> {
    await this.shutdown()
    await this.engineStarting
    await this.engine?.stop()
    await this.gateway.close()
  }

  // ---- engine events ----

  private onEngineEvent (event: EngineEvent): void {
    const p = isObject(event.properties) ? event.properties : {}
    if (event.type === 'session.created' && isObject(p.info) && typeof p.info.id === 'string' && typeof p.info.parentID === 'string') {
      this.parents.set(p.info.id, p.info.parentID)
      return
    }
    const engineSessionId = sessionIdOf(p)
    if (!engineSessionId) return
    const rootId = this.rootOf(engineSessionId)
    const live = this.byEngineId.get(rootId)
    if (!live || live.finished) return
    const isRoot = rootId === engineSessionId
    switch (event.type) {
      case 'message.updated':
        if (isObject(p.info) && typeof p.info.id === 'string' && typeof p.info.role === 'string') live.mapper.message(p.info.id, p.info.role)
        break
      case 'message.part.updated':
        if (isObject(p.part)) live.mapper.part(p.part as unknown as EnginePart)
        break
      case 'message.part.delta':
        if (p.field === 'text' && typeof p.delta === 'string' && typeof p.messageID === 'string' && typeof p.partID === 'string') {
          live.mapper.delta(p.messageID, p.partID, p.delta)
        }
        break
      case 'todo.updated':
        if (isRoot && Array.isArray(p.todos)) this.progress(live, p.todos)
        break
      case 'session.status':
        if (isObject(p.status) && p.status.type === 'retry') this.retrying(live, p.status)
        break
      case 'session.error':
        if (isRoot) this.engineError(live, p.error)
        break
      case 'session.idle':
        if (isRoot) this.onIdle(live)
        break
    }
  }

  private progress (live: Live, todos: unknown[]): void {
    const total = todos.length
    const done = todos.filter(t => isObject(t) && (t.status === 'completed' || t.status === 'cancelled')).length
    const progress = total ? Math.min(99, Math.floor((done / total) * 100)) : 0
    if (progress === live.record.progress) return
    live.record.progress = progress
    this.save(live)
    live.mapper.flush()
    this.emit(live, 'status', { status: live.record.status, progress })
  }

  private retrying (live: Live, status: Record<string, unknown>): void {
    const next = typeof status.next === 'number' ? status.next : Date.now()
    this.metrics.providerRetries.inc()
    live.mapper.flush()
    this.emit(live, 'error', {
      error: typeof status.message === 'string' ? status.message : 'The provider failed; the engine retries',
      code: 'provider_retry',
      fatal: false,
      retry_after: Math.max(0, Math.ceil((next - Date.now()) / 1000)),
      ...(typeof status.attempt === 'number' ? { attempt: status.attempt } : {}),
    })
  }

  private engineError (live: Live, error: unknown): void {
    if (live.engineError || !isObject(error)) return
    const name = typeof error.name === 'string' ? error.name : 'UnknownError'
    if (name === 'MessageAbortedError') return
    const data = isObject(error.data) ? error.data : {}
    const message = typeof data.message === 'string' ? data.message : name
    live.engineError = { code: engineErrorCode(name, data.statusCode), message }
  }

  private onIdle (live: Live): void {
    live.markIdle()
    if (live.stopping) return
    const ending: Ending = live.engineError
      ? { kind: 'failed', ...live.engineError }
      : { kind: 'completed' }
    this.finish(live, ending).catch(err => this.log.error({ err, sessionId: live.record.session_id }, 'finishing the session failed'))
  }

  private onEngineDown (reason: string): void {
    for (const live of this.live.values()) {
      live.markIdle()
      this.finish(live, { kind: 'failed', code: 'engine_crashed', message: `The OpenCode engine stopped: ${reason}` }).catch(() => {})
    }
  }

  /** After the engine's event stream was re-established: catch up from its messages. */
  private async reconcileAll (): Promise<void> {
    const statuses = await this.client().sessionStatus()
    for (const live of [...this.live.values()]) {
      live.resynced = true
      await this.catchUp(live)
      const busy = isObject(statuses) && isObject(statuses[live.engineId])
      if (!busy && live.record.status === 'running' && !live.finished) this.onIdle(live)
    }
  }

  /** Feeds the engine's authoritative messages through the (idempotent) mapper. */
  private async catchUp (live: Live): Promise<Array<{ info: Record<string, unknown>, parts: EnginePart[] }>> {
    const messages = await this.client().messages(live.engineId) as unknown as Array<{ info: Record<string, unknown>, parts: EnginePart[] }>
    for (const { info, parts } of messages) {
      if (typeof info.id !== 'string' || typeof info.role !== 'string') continue
      live.mapper.message(info.id, info.role)
      for (const part of parts) live.mapper.part(part)
    }
    return messages
  }

  // ---- ending ----

  /** Asks the engine to stop the session and waits until it has (or gives up waiting). */
  private stop (live: Live, ending: Ending): Promise<void> {
    if (live.finished) return live.finished
    live.stopping ??= ending
    this.engine?.client?.abort(live.engineId).catch(err => this.log.warn({ err, sessionId: live.record.session_id }, 'abort failed'))
    const confirmed = Promise.race([live.idle, new Promise<void>(resolve => setTimeout(resolve, IDLE_WAIT_MS).unref())])
    return confirmed.then(() => this.finish(live, live.stopping!))
  }

  private finish (live: Live, ending: Ending): Promise<void> {
    live.finished ??= this.doFinish(live, ending)
    return live.finished
  }

  private async doFinish (live: Live, ending: Ending): Promise<void> {
    const record = live.record
    if (live.timeout) clearTimeout(live.timeout)
    if (ending.kind === 'completed' && live.resynced) {
      // Events may have been missed while the engine's stream was down: read the session back.
      await this.catchUp(live).catch(err => this.log.warn({ err, sessionId: record.session_id }, 'could not read the session back from the engine'))
    }
    const finalMessage = live.mapper.finalMessage()
    if (live.before) {
      const after = await snapshotWorkspace(this.config.workspaceDir).catch(() => undefined)
      if (after) for (const file of changedFiles(live.before, after.files)) if (!isProbeFile(file)) live.mapper.addFile(file)
    }
    live.mapper.close()
    const finished = now()
    record.finished_at = finished
    record.files_modified = [...live.mapper.files].sort()
    record.usage = { ...live.mapper.usage }
    const durationMs = Date.now() - live.startedAt
    switch (ending.kind) {
      case 'completed':
        record.status = 'completed'
        record.progress = 100
        record.final_message = finalMessage
        this.emit(live, 'status', { status: 'completed', progress: 100 })
        this.emit(live, 'complete', { final_message: finalMessage, files_modified: record.files_modified, usage: record.usage, duration_ms: durationMs })
        break
      case 'failed':
        record.status = 'failed'
        record.error = { code: ending.code, message: ending.message }
        this.emit(live, 'error', { error: ending.message, code: ending.code, fatal: true })
        break
      case 'cancelled':
        record.status = 'cancelled'
        record.cancelled_at = finished
        if (ending.code) {
          record.error = { code: ending.code, message: ending.message ?? ending.code }
          this.emit(live, 'error', { error: record.error.message, code: ending.code, fatal: true })
        } else {
          this.emit(live, 'status', { status: 'cancelled', progress: record.progress, message: ending.message })
        }
        break
    }
    this.save(live)
    live.log.close()
    this.live.delete(record.session_id)
    this.byEngineId.delete(live.engineId)
    for (const [child, parent] of this.parents) if (parent === live.engineId) this.parents.delete(child)
    this.metrics.sessionDuration.observe({ status: record.status }, (Date.parse(finished) - Date.parse(record.created_at)) / 1000)
    this.log.info({ sessionId: record.session_id, status: record.status, durationMs, error: record.error?.code }, 'session ended')
    await this.sweep()
  }

  // ---- helpers ----

  /** Appends to the session's log; a failed write (disk full, state dir gone) is logged, never thrown into the engine's event loop. */
  private emit (live: Live, event: SessionEventType, data: Record<string, unknown>): void {
    try {
      const stored = live.log.append(event, data)
      if (stored) {
        live.record.last_event_id = stored.id
        this.metrics.eventsEmitted.inc({ event })
        if (!live.firstEventSeen && (event === 'output' || event === 'tool_call')) {
          live.firstEventSeen = true
          this.metrics.timeToFirstEvent.observe((Date.now() - Date.parse(live.record.created_at)) / 1000)
        }
      }
    } catch (err) {
      this.log.error({ err, sessionId: live.record.session_id, event }, 'could not store a session event')
    }
    live.record.updated_at = now()
  }

  private save (live: Live): void {
    live.record.updated_at = now()
    live.record.last_event_id = live.log.lastId
    try {
      this.store.save(live.record)
    } catch (err) {
      this.log.error({ err, sessionId: live.record.session_id }, 'could not persist the session record')
    }
  }

  private get (sessionId: string): SessionRecord {
    const record = this.records.get(sessionId.toLowerCase())
    if (!record) throw new ServiceError('not_found', `Session ${sessionId} not found`, { session_id: sessionId })
    return record
  }

  private view (record: SessionRecord): SessionStatusType {
    const live = this.live.get(record.session_id)
    // Field by field (no rest/spread): status is polled many times a second, and a literal of a
    // fixed shape is several times cheaper to build and to serialize (measured: bench/README.md).
    return {
      session_id: record.session_id,
      status: record.status,
      progress: record.progress,
      created_at: record.created_at,
      started_at: record.started_at,
      updated_at: record.updated_at,
      finished_at: record.finished_at,
      cancelled_at: record.cancelled_at,
      model: record.model,
      last_event_id: live ? live.log.lastId : record.last_event_id,
      final_message: record.final_message,
      files_modified: live ? [...live.mapper.files].sort() : record.files_modified,
      error: record.error,
      usage: live ? { ...live.mapper.usage } : record.usage,
      stream_url: `/sessions/${record.session_id}/stream`,
    }
  }

  private rootOf (engineSessionId: string): string {
    let id = engineSessionId
    for (let hops = 0; hops < 16; hops++) {
      const parent = this.parents.get(id)
      if (!parent) return id
      id = parent
    }
    return id
  }

  private async resolveRoute (engineSessionId: string): Promise<SessionRoute | undefined> {
    let root = this.rootOf(engineSessionId)
    if (!this.byEngineId.has(root) && this.engine?.client) {
      // A subagent's first request can precede its session.created event.
      const info = await this.engine.client.getSession(engineSessionId).catch(() => undefined)
      if (info?.parentID) {
        this.parents.set(engineSessionId, info.parentID)
        root = this.rootOf(engineSessionId)
      }
    }
    const live = this.byEngineId.get(root)
    return live && !live.finished ? live.route : undefined
  }

  /** The engine's own id when its catalog knows the model (keeps its per-model behaviour), else the placeholder. */
  private engineModelId (provider: CreateSessionBodyType['model_config']['provider'], model: string): string {
    return this.knownModels.get(ENGINE_PROVIDER[provider])?.has(model) ? model : PLACEHOLDER_MODEL
  }

  private async loadCatalog (): Promise<void> {
    const { providers } = await this.client().providers()
    this.knownModels = new Map(providers.map(p => [p.id, new Set(Object.keys(p.models))]))
  }

  private client (): EngineClient {
    const client = this.engine?.client
    if (!client) throw new ServiceError('not_ready', 'The OpenCode engine is not ready', undefined, RETRY_AFTER_NOT_READY)
    return client
  }

  private streamRefusal (err: StreamLimitError): ServiceError {
    return err.reason === 'shutting_down'
      ? new ServiceError('not_ready', 'The server is shutting down', undefined, RETRY_AFTER_NOT_READY)
      : new ServiceError('capacity', `Too many stream clients: ${err.message}`, { limit: err.limit }, RETRY_AFTER_BUSY)
  }

  /** Sessions that were running when the sidecar died end failed/interrupted, with a terminal event. */
  private recover (): void {
    for (const record of this.store.loadAll()) {
      this.records.set(record.session_id, record)
      if (!ACTIVE.has(record.status)) continue
      const log = EventLog.open(this.store.eventsFile(record.session_id))
      const message = 'The sidecar restarted while the session was running'
      log.append('error', { error: message, code: 'interrupted', fatal: true })
      record.status = 'failed'
      record.error = { code: 'interrupted', message }
      record.finished_at = record.updated_at = now()
      record.last_event_id = log.lastId
      log.close()
      this.store.save(record)
      this.log.warn({ sessionId: record.session_id }, 'session interrupted by a restart')
    }
  }

  /** Retention: ended sessions beyond the count, or older than the age limit, are deleted. */
  private async sweep (): Promise<void> {
    const ended = [...this.records.values()].filter(r => !ACTIVE.has(r.status) && !this.live.has(r.session_id))
    const cutoff = Date.now() - this.config.retentionMs
    const expired = (r: SessionRecord): boolean => Date.parse(endedAt(r)) < cutoff
    let doomed: SessionRecord[]
    if (ended.length <= this.config.retentionCount) {
      doomed = ended.filter(expired) // (runs at every session's end: no sort unless over the count)
    } else {
      // Newest first; the timestamps are ISO 8601 UTC, so they sort as strings.
      ended.sort((a, b) => endedAt(a) < endedAt(b) ? 1 : endedAt(a) > endedAt(b) ? -1 : 0)
      doomed = ended.filter((r, index) => index >= this.config.retentionCount || expired(r))
    }
    for (const record of doomed) {
      this.records.delete(record.session_id)
      await this.store.remove(record.session_id)
    }
  }
}

function endedAt (record: SessionRecord): string {
  return record.finished_at ?? record.updated_at
}

/** The readiness probe's short-lived file (see src/readiness.ts). */
function isProbeFile (file: string): boolean {
  return file.startsWith(PROBE_PREFIX)
}

function sessionIdOf (p: Record<string, unknown>): string | undefined {
  if (typeof p.sessionID === 'string') return p.sessionID
  if (isObject(p.part) && typeof p.part.sessionID === 'string') return p.part.sessionID
  if (isObject(p.info) && typeof p.info.sessionID === 'string') return p.info.sessionID
  return undefined
}
