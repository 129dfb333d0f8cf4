import { StreamClient, type StreamClientOptions, type StreamClientSettings } from './stream-client.js'

export const DEFAULT_MAX_CLIENTS_PER_SESSION = 256
export const DEFAULT_MAX_CLIENTS = 1024

export type StreamRefusal = 'session_limit' | 'total_limit' | 'shutting_down'

export class StreamLimitError extends Error {
  readonly reason: StreamRefusal
  readonly limit: number

  constructor (reason: StreamRefusal, limit: number) {
    super(reason === 'session_limit'
      ? `too many streams for this session (limit ${limit})`
      : reason === 'total_limit'
        ? `too many open streams (limit ${limit})`
        : 'the server is shutting down')
    this.name = 'StreamLimitError'
    this.reason = reason
    this.limit = limit
  }
}

export interface StreamRegistryOptions {
  maxClientsPerSession?: number
  maxClients?: number
  /** Defaults for every client (heartbeat, retry, slow-client bounds). */
  client?: StreamClientSettings
}

export type AttachOptions = Omit<StreamClientOptions, 'onSlow'>

export interface StreamStats {
  clients: number
  sessions: number
  slowClientsDisconnected: number
}

/** Every live stream client, per session and in total, with the limits the HTTP layer enforces. */
export class StreamRegistry {
  readonly maxClientsPerSession: number
  readonly maxClients: number
  readonly #clientDefaults: StreamClientSettings
  readonly #sessions = new Map<string, Set<StreamClient>>()
  #total = 0
  #slowClientsDisconnected = 0
  #shuttingDown = false

  constructor (options: StreamRegistryOptions = {}) {
    this.maxClientsPerSession = options.maxClientsPerSession ?? DEFAULT_MAX_CLIENTS_PER_SESSION
    this.maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS
    this.#clientDefaults = options.client ?? {}
  }

  get slowClientsDisconnected (): number { return this.#slowClientsDisconnected }

  /** Why a new client for this session would be refused, or null. Check before sending headers. */
  check (sessionId: string): StreamLimitError | null {
    if (this.#shuttingDown) return new StreamLimitError('shutting_down', 0)
    if ((this.#sessions.get(sessionId)?.size ?? 0) >= this.maxClientsPerSession) {
      return new StreamLimitError('session_limit', this.maxClientsPerSession)
    }
    if (this.#total >= this.maxClients) return new StreamLimitError('total_limit', this.maxClients)
    return null
  }

  /** Starts streaming to `res`; throws StreamLimitError when `check` would refuse. */
  attach (sessionId: string, options: AttachOptions): StreamClient {
    const refusal = this.check(sessionId)
    if (refusal !== null) throw refusal
    let clients = this.#sessions.get(sessionId)
    if (clients === undefined) {
      clients = new Set()
      this.#sessions.set(sessionId, clients)
    }
    const set = clients
    let registered = false
    const client = new StreamClient({
      ...this.#clientDefaults,
      ...options,
      onSlow: () => { this.#slowClientsDisconnected++ },
      onClose: (closed) => {
        // A client can close inside its own constructor (a response already gone).
        if (registered && set.delete(closed)) {
          this.#total--
          if (set.size === 0 && this.#sessions.get(sessionId) === set) this.#sessions.delete(sessionId)
        }
        options.onClose?.(closed)
      },
    })
    if (client.state === 'closed') {
      if (set.size === 0) this.#sessions.delete(sessionId)
      return client
    }
    set.add(client)
    registered = true
    this.#total++
    return client
  }

  count (sessionId?: string): number {
    return sessionId === undefined ? this.#total : (this.#sessions.get(sessionId)?.size ?? 0)
  }

  stats (): StreamStats {
    return { clients: this.#total, sessions: this.#sessions.size, slowClientsDisconnected: this.#slowClientsDisconnected }
  }

  /** Ends every stream of one session (e.g. the session is being deleted). */
  async closeSession (sessionId: string): Promise<void> {
    const clients = this.#sessions.get(sessionId)
    if (clients !== undefined) await Promise.all([...clients].map(async (client) => client.close()))
  }

  /** Shutdown: refuses new clients and ends all streams; resolves when every one is gone. */
  async closeAll (): Promise<void> {
    this.#shuttingDown = true
    const all: StreamClient[] = []
    for (const clients of this.#sessions.values()) all.push(...clients)
    await Promise.all(all.map(async (client) => client.close()))
  }
}
