import http from 'node:http'
/** Minimal typed client for the parts of the engine's HTTP API this sidecar uses. */

export type PermissionAction = 'allow' | 'deny' | 'ask'

export interface PermissionRule {
  permission: string
  pattern: string
  action: PermissionAction
}

export interface EngineSession {
  id: string
  title?: string
  parentID?: string
  directory?: string
  time?: { created: number, updated: number }
}

export type EngineSessionStatus =
  | { type: 'idle' }
  | { type: 'busy' }
  | { type: 'retry', attempt: number, message: string, next: number }

export interface EngineMessageInfo {
  id: string
  sessionID: string
  role: 'user' | 'assistant'
  [key: string]: unknown
}

export interface EnginePart {
  id: string
  sessionID: string
  messageID: string
  type: string
  [key: string]: unknown
}

export interface EngineMessage {
  info: EngineMessageInfo
  parts: EnginePart[]
}

export interface EngineModel {
  id: string
  name?: string
  [key: string]: unknown
}

export interface EngineProvider {
  id: string
  name?: string
  models: Record<string, EngineModel>
  [key: string]: unknown
}

export interface EngineProviders {
  providers: EngineProvider[]
  /** provider id → its default model id */
  default: Record<string, string>
}

export interface EngineHealth {
  healthy: boolean
  version: string
}

export interface EnginePaths {
  home: string
  directory: string
  worktree: string
  [key: string]: unknown
}

export interface PromptBody {
  parts: Array<{ type: 'text', text: string }>
  model?: { providerID: string, modelID: string }
  system?: string
  /** Replaces the session's whole tool rule set: always send the full map. */
  tools?: Record<string, boolean>
  agent?: string
  messageID?: string
}

export interface RequestOptions {
  timeoutMs?: number
  signal?: AbortSignal
}

export interface EngineClientOptions {
  /** e.g. http://127.0.0.1:4096 */
  baseUrl: string
  /** Absolute workspace path, sent as `?directory=` on every call. */
  directory: string
  /** HTTP Basic `opencode:<password>` when set. */
  password?: string
  /** Default per-request timeout. */
  timeoutMs?: number
}

export type EngineRequestErrorKind = 'http' | 'timeout' | 'network' | 'aborted' | 'bad_response'

export class EngineRequestError extends Error {
  readonly kind: EngineRequestErrorKind
  /** HTTP status when the engine answered. */
  readonly status: number | undefined
  readonly method: string
  readonly path: string

  constructor (kind: EngineRequestErrorKind, method: string, path: string, message: string, status?: number, cause?: unknown) {
    super(`engine ${method} ${path}: ${message}`, { cause })
    this.name = 'EngineRequestError'
    this.kind = kind
    this.status = status
    this.method = method
    this.path = path
  }
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export class EngineClient {
  readonly baseUrl: string
  readonly directory: string
  readonly timeoutMs: number
  readonly #authorization: string | undefined

  constructor (opts: EngineClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '')
    this.directory = opts.directory
    this.timeoutMs = opts.timeoutMs ?? 10_000
    this.#authorization = opts.password !== undefined && opts.password !== ''
      ? `Basic ${Buffer.from(`opencode:${opts.password}`).toString('base64')}`
      : undefined
  }

  /** Headers every engine request needs (also for the event stream). */
  headers (): Record<string, string> {
    return this.#authorization === undefined ? {} : { authorization: this.#authorization }
  }

  url (path: string, query: Record<string, string | undefined> = {}): URL {
    const url = new URL(this.baseUrl + path)
    url.searchParams.set('directory', this.directory)
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, value)
    }
    return url
  }

  /**
   * Sends one request and returns the parsed JSON body (undefined for an empty body). A GET that
   * fails on the connection is retried once (it is safe to repeat; a POST may not be).
   */
  async request (method: string, path: string, init: RequestOptions & { body?: unknown, query?: Record<string, string | undefined> } = {}): Promise<unknown> {
    try {
      return await this.#send(method, path, init)
    } catch (err) {
      if (method !== 'GET' || !(err instanceof EngineRequestError) || err.kind !== 'network') throw err
      return await this.#send(method, path, init)
    }
  }

  async #send (method: string, path: string, init: RequestOptions & { body?: unknown, query?: Record<string, string | undefined> }): Promise<unknown> {
    const timeoutMs = init.timeoutMs ?? this.timeoutMs
    const signals = [AbortSignal.timeout(timeoutMs)]
    if (init.signal !== undefined) signals.push(init.signal)
    const headers: Record<string, string> = { accept: 'application/json', ...this.headers() }
    const body = init.body === undefined ? undefined : JSON.stringify(init.body)
    if (body !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = String(Buffer.byteLength(body))
    }
    let res: { ok: boolean, status: number }
    let text: string
    try {
      ({ res, text } = await send(this.url(path, init.query), method, headers, body, AbortSignal.any(signals)))
    } catch (err) {
      if (err instanceof Error && err.name === 'TimeoutError') {
        throw new EngineRequestError('timeout', method, path, `no answer within ${timeoutMs} ms`, undefined, err)
      }
      if (err instanceof Error && err.name === 'AbortError') {
        throw new EngineRequestError('aborted', method, path, 'aborted', undefined, err)
      }
      throw new EngineRequestError('network', method, path, err instanceof Error ? err.message : String(err), undefined, err)
    }
    if (!res.ok) {
      throw new EngineRequestError('http', method, path, `HTTP ${res.status}: ${text.slice(0, 500)}`, res.status)
    }
    if (text === '') return undefined
    try {
      return JSON.parse(text)
    } catch (err) {
      throw new EngineRequestError('bad_response', method, path, `not JSON: ${text.slice(0, 200)}`, res.status, err)
    }
  }

  async #object (method: string, path: string, init: Parameters<EngineClient['request']>[2] = {}): Promise<Record<string, unknown>> {
    const body = await this.request(method, path, init)
    if (!isRecord(body)) throw new EngineRequestError('bad_response', method, path, 'expected a JSON object')
    return body
  }

  async #array (method: string, path: string, init: Parameters<EngineClient['request']>[2] = {}): Promise<unknown[]> {
    const body = await this.request(method, path, init)
    if (!Array.isArray(body)) throw new EngineRequestError('bad_response', method, path, 'expected a JSON array')
    return body
  }

  /** `GET /global/health`: answers without touching the workspace instance. */
  async health (opts: RequestOptions = {}): Promise<EngineHealth> {
    const body = await this.#object('GET', '/global/health', opts)
    if (typeof body.version !== 'string') throw new EngineRequestError('bad_response', 'GET', '/global/health', 'no version')
    return { healthy: body.healthy === true, version: body.version }
  }

  /** `GET /path`: cheap, and the first call for a directory boots its instance (warm-up). */
  async paths (opts: RequestOptions = {}): Promise<EnginePaths> {
    const body = await this.#object('GET', '/path', opts)
    if (typeof body.directory !== 'string') throw new EngineRequestError('bad_response', 'GET', '/path', 'no directory')
    return body as EnginePaths
  }

  /** Always give a title: without one the engine spends an extra LLM call on naming the session. */
  async createSession (title: string, permission?: PermissionRule[], opts: RequestOptions = {}): Promise<EngineSession> {
    const body = await this.#object('POST', '/session', { ...opts, body: permission === undefined ? { title } : { title, permission } })
    if (typeof body.id !== 'string') throw new EngineRequestError('bad_response', 'POST', '/session', 'no session id')
    return body as unknown as EngineSession
  }

  async getSession (id: string, opts: RequestOptions = {}): Promise<EngineSession> {
    const path = `/session/${encodeURIComponent(id)}`
    const body = await this.#object('GET', path, opts)
    if (typeof body.id !== 'string') throw new EngineRequestError('bad_response', 'GET', path, 'no session id')
    return body as unknown as EngineSession
  }

  /** Returns once the engine accepted the prompt (204); what happens next arrives as events. */
  async promptAsync (id: string, body: PromptBody, opts: RequestOptions = {}): Promise<void> {
    await this.request('POST', `/session/${encodeURIComponent(id)}/prompt_async`, { ...opts, body })
  }

  /** The engine answers `true` even for unknown ids: confirm with `session.idle` or `sessionStatus()`. */
  async abort (id: string, opts: RequestOptions = {}): Promise<boolean> {
    return await this.request('POST', `/session/${encodeURIComponent(id)}/abort`, opts) === true
  }

  async messages (id: string, opts: RequestOptions = {}): Promise<EngineMessage[]> {
    return await this.#array('GET', `/session/${encodeURIComponent(id)}/message`, opts) as EngineMessage[]
  }

  /** Busy and retrying sessions only: an idle session is absent from the map. */
  async sessionStatus (opts: RequestOptions = {}): Promise<Record<string, EngineSessionStatus>> {
    return await this.#object('GET', '/session/status', opts) as Record<string, EngineSessionStatus>
  }

  /** Files changed by the turn that `messageID` (a user message) started. */
  /** Aborts everything in every instance and kills tool process trees. */
  async dispose (opts: RequestOptions = {}): Promise<void> {
    await this.request('POST', '/global/dispose', opts)
  }

  /** Configured providers with their model ids, and each provider's default model. */
  async providers (opts: RequestOptions = {}): Promise<EngineProviders> {
    const body = await this.#object('GET', '/config/providers', opts)
    if (!Array.isArray(body.providers)) throw new EngineRequestError('bad_response', 'GET', '/config/providers', 'no providers')
    return body as unknown as EngineProviders
  }
}

/**
 * One HTTP request on a connection of its own. The engine closes idle keep-alive connections on
 * its own schedule; a pooled socket it has just closed fails a request that may not be safe to
 * repeat (a prompt), so requests to the engine never reuse connections (loopback: ~0.1 ms each).
 */
function send (url: URL, method: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal): Promise<{ res: { ok: boolean, status: number }, text: string }> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const req = http.request(url, { method, headers, agent: false }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        const status = response.statusCode ?? 0
        resolve({ res: { ok: status >= 200 && status < 300, status }, text: Buffer.concat(chunks).toString('utf8') })
      })
      response.on('error', reject)
    })
    const onAbort = () => req.destroy(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    req.on('close', () => signal.removeEventListener('abort', onAbort))
    req.on('error', reject)
    req.end(body)
  })
}
