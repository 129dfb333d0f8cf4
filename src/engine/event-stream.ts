import { EventEmitter } from 'node:events'
import http from 'node:http'
import type { EngineClient } from './client.js'

/** One engine event as it arrives on `GET /event`. */
export interface EngineEvent {
  id?: string
  type: string
  properties: Record<string, unknown>
}

export interface SseMessage {
  id?: string
  event?: string
  data: string
}

const LINE_END = /\r\n?|\n/g

/**
 * Incremental parser for `text/event-stream` (WHATWG rules): LF, CRLF and CR line ends (also split
 * across chunks), `:` comments, multi-line `data`, one optional space after the colon.
 */
export class SseParser {
  #buffer = ''
  #pendingCR = false
  #data: string[] = []
  #event: string | undefined
  #id: string | undefined

  /** Feeds decoded text; returns the messages it completed. */
  push (chunk: string): SseMessage[] {
    const out: SseMessage[] = []
    if (chunk === '') return out // (a decoder may yield nothing): a pending CR stays pending
    let text = chunk
    // A CR at the end of the previous chunk already ended its line; drop the LF of a split CRLF.
    if (this.#pendingCR && text.startsWith('\n')) text = text.slice(1)
    this.#pendingCR = false
    const buffer = this.#buffer + text
    // The kept buffer is a partial line (no line end in it): the scan starts after it, so a long
    // event (a tool's output, tens of KB) arriving in many chunks is not rescanned for each one.
    LINE_END.lastIndex = this.#buffer.length
    let start = 0
    for (let m = LINE_END.exec(buffer); m !== null; m = LINE_END.exec(buffer)) {
      this.#line(buffer.slice(start, m.index), out)
      start = LINE_END.lastIndex
      if (m[0] === '\r' && start === buffer.length) this.#pendingCR = true
    }
    this.#buffer = start === 0 ? buffer : buffer.slice(start)
    return out
  }

  #line (line: string, out: SseMessage[]): void {
    if (line === '') {
      if (this.#data.length > 0) {
        const message: SseMessage = { data: this.#data.join('\n') }
        if (this.#event !== undefined) message.event = this.#event
        if (this.#id !== undefined) message.id = this.#id
        out.push(message)
      }
      this.#data = []
      this.#event = undefined
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') this.#data.push(value)
    else if (field === 'event') this.#event = value
    else if (field === 'id' && !value.includes('\0')) this.#id = value
  }
}

/** Parses one SSE message into an engine event; undefined for anything else. */
export function toEngineEvent (message: SseMessage): EngineEvent | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(message.data)
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined
  const { id, type, properties } = parsed as Record<string, unknown>
  if (typeof type !== 'string') return undefined
  const event: EngineEvent = {
    type,
    properties: typeof properties === 'object' && properties !== null ? properties as Record<string, unknown> : {},
  }
  const eventId = typeof id === 'string' ? id : message.id
  if (eventId !== undefined) event.id = eventId
  return event
}

export interface EventStreamLogger {
  debug (obj: object, msg: string): void
  warn (obj: object, msg: string): void
}

export interface EngineEventStreamOptions {
  client: EngineClient
  logger?: EventStreamLogger
  /** No byte (event or heartbeat) for this long = dead stream. The engine beats every ~10 s. */
  staleMs?: number
  /** Time allowed for the response headers. */
  connectTimeoutMs?: number
  minBackoffMs?: number
  maxBackoffMs?: number
}

export interface EngineEventStreamEvents {
  event: [EngineEvent]
  /** The stream is up (the first time, and after every reconnect). */
  connected: [{ reconnect: boolean }]
  /** Connected again after a loss: events may have been missed, reconcile from the engine. */
  reconnected: []
  /** The stream was lost (stale, closed, failed); it reconnects by itself. */
  disconnected: [{ reason: string }]
}

/**
 * Keeps one `GET /event` stream open with a staleness watchdog; reconnects with backoff until stopped.
 * The engine neither numbers nor replays events, so a reconnect can only be followed by a resync.
 */
export class EngineEventStream extends EventEmitter<EngineEventStreamEvents> {
  readonly #client: EngineClient
  readonly #logger: EventStreamLogger | undefined
  readonly #staleMs: number
  readonly #connectTimeoutMs: number
  readonly #minBackoffMs: number
  readonly #maxBackoffMs: number
  #running = false
  #abort: (() => void) | undefined
  #watchdog: NodeJS.Timeout | undefined
  #retryTimer: NodeJS.Timeout | undefined
  #wake: (() => void) | undefined
  #everConnected = false
  #connected = false
  #lastActivity = 0

  constructor (opts: EngineEventStreamOptions) {
    super()
    this.#client = opts.client
    this.#logger = opts.logger
    this.#staleMs = opts.staleMs ?? 25_000
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 10_000
    this.#minBackoffMs = opts.minBackoffMs ?? 250
    this.#maxBackoffMs = opts.maxBackoffMs ?? 5_000
  }

  get connected (): boolean {
    return this.#connected
  }

  /** Epoch ms of the last byte received. */
  get lastActivity (): number {
    return this.#lastActivity
  }

  /** Starts the loop; resolves on the first `server.connected`, rejects after `timeoutMs` (the loop keeps trying). */
  async start (timeoutMs = this.#connectTimeoutMs): Promise<void> {
    if (this.#running) throw new Error('event stream already started')
    this.#running = true
    const first = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('connected', onConnected)
        reject(new Error(`engine event stream not connected within ${timeoutMs} ms`))
      }, timeoutMs)
      const onConnected = (): void => {
        clearTimeout(timer)
        resolve()
      }
      this.once('connected', onConnected)
    })
    this.#loop().catch(err => this.#logger?.warn({ err }, 'engine event stream loop crashed'))
    await first
  }

  stop (): void {
    this.#running = false
    this.#connected = false
    this.#abort?.()
    clearTimeout(this.#watchdog)
    clearTimeout(this.#retryTimer)
    this.#wake?.()
  }

  async #loop (): Promise<void> {
    let backoff = this.#minBackoffMs
    while (this.#running) {
      const reason = await this.#once()
      const wasConnected = this.#connected
      this.#connected = false
      if (!this.#running) break
      if (wasConnected) {
        backoff = this.#minBackoffMs
        this.emit('disconnected', { reason })
      }
      this.#logger?.debug({ reason, retryInMs: backoff }, 'engine event stream lost')
      await new Promise<void>(resolve => {
        this.#wake = resolve
        this.#retryTimer = setTimeout(resolve, backoff)
      })
      this.#wake = undefined
      backoff = Math.min(backoff * 2, this.#maxBackoffMs)
    }
  }

  /**
   * One connection, until it ends; returns why it ended. On `node:http` rather than `fetch`: the
   * stream carries every engine event (a tool's growing output, tens of KB, several times a
   * second), and a socket's text chunks reach the parser without WHATWG stream machinery per chunk.
   */
  #once (): Promise<string> {
    return new Promise<string>(resolve => {
      let settled = false
      const req = http.get(this.#client.url('/event'), { headers: { accept: 'text/event-stream', ...this.#client.headers() }, agent: false })
      const end = (reason: string): void => {
        if (settled) return
        settled = true
        clearTimeout(this.#watchdog)
        this.#abort = undefined
        req.destroy()
        resolve(reason)
      }
      this.#abort = () => end('stopped')
      const arm = (ms: number, reason: string): void => {
        clearTimeout(this.#watchdog)
        this.#watchdog = setTimeout(() => end(reason), ms)
      }
      arm(this.#connectTimeoutMs, `no event or heartbeat for ${this.#connectTimeoutMs} ms`)
      req.on('error', err => end(this.#running ? err.message : 'stopped'))
      req.on('response', res => {
        const status = res.statusCode ?? 0
        if (status < 200 || status >= 300) {
          res.resume()
          return end(`HTTP ${status}`)
        }
        const parser = new SseParser()
        res.setEncoding('utf8')
        arm(this.#staleMs, `no event or heartbeat for ${this.#staleMs} ms`)
        res.on('data', (text: string) => {
          this.#lastActivity = Date.now()
          this.#watchdog?.refresh()
          for (const message of parser.push(text)) this.#dispatch(message)
        })
        res.on('end', () => end('stream ended'))
        res.on('error', err => end(this.#running ? err.message : 'stopped'))
        res.on('close', () => end(this.#running ? 'stream closed' : 'stopped'))
      })
    })
  }

  #dispatch (message: SseMessage): void {
    const event = toEngineEvent(message)
    if (event === undefined) {
      this.#logger?.warn({ data: message.data.slice(0, 200) }, 'unparsable engine event')
      return
    }
    try {
      if (event.type === 'server.connected' && !this.#connected) {
        this.#connected = true
        const reconnect = this.#everConnected
        this.#everConnected = true
        this.emit('connected', { reconnect })
        if (reconnect) this.emit('reconnected')
      }
      this.emit('event', event)
    } catch (err) {
      // A consumer's bug must not cost the stream (and with it every session's events).
      this.#logger?.warn({ err, type: event.type }, 'engine event listener threw')
    }
  }
}
