import type { ServerResponse } from 'node:http'
import type { EventLog } from './event-log.js'
import { HEARTBEAT_FRAME, retryFrame } from './types.js'

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
}

export const STREAM_CLIENT_DEFAULTS = {
  retryMs: 2000,
  heartbeatMs: 15_000,
  maxBufferedBytes: 1024 * 1024,
  stallTimeoutMs: 30_000,
  chunkBytes: 64 * 1024,
  closeTimeoutMs: 2000,
} as const

export interface StreamClientSettings {
  /** Sent first as `retry:`, the client's reconnection delay. */
  retryMs?: number
  /** 0 disables heartbeats. */
  heartbeatMs?: number
  /**
   * How many bytes the session may produce while this client's socket is not draining before the
   * client counts as slow and is disconnected.
   */
  maxBufferedBytes?: number
  /** How long the socket may stay without draining while events wait for it. */
  stallTimeoutMs?: number
  /** Upper bound of one coalesced write. */
  chunkBytes?: number
  /** After `close()`, how long a response that cannot flush is given before its socket is destroyed. */
  closeTimeoutMs?: number
}

export interface StreamClientOptions extends StreamClientSettings {
  log: EventLog
  res: ServerResponse
  /** Replay starts after this id (`Last-Event-ID`); 0 replays everything. */
  afterId?: number
  /** Extra response headers, when the client sends the headers itself. */
  headers?: Record<string, string>
  onSlow?: (client: StreamClient) => void
  onClose?: (client: StreamClient) => void
}

type State = 'open' | 'ending' | 'closed'

/**
 * One SSE connection following an event log. The client is a cursor over the log's events: it
 * remembers only the index of the next event to send, so replay and live events are the same
 * loop (no gap, no duplicate at the hand-off) and a lagging client holds no copy of anything
 * beyond what its socket has buffered.
 */
export class StreamClient {
  readonly log: EventLog
  readonly res: ServerResponse
  /** Resolves once the connection is gone and everything the client held is released. */
  readonly closed: Promise<void>
  readonly #afterId: number
  readonly #maxBufferedBytes: number
  readonly #stallTimeoutMs: number
  readonly #chunkBytes: number
  readonly #closeTimeoutMs: number
  readonly #onSlow: ((client: StreamClient) => void) | undefined
  readonly #onClose: ((client: StreamClient) => void) | undefined
  #resolveClosed!: () => void
  #state: State = 'open'
  #next: number
  #flushScheduled = false
  #waitingDrain = false
  #waitStartBytes = 0
  #heartbeatTimer: NodeJS.Timeout | null = null
  #stallTimer: NodeJS.Timeout | null = null
  #closeTimer: NodeJS.Timeout | null = null
  #unsubscribeAppend: () => void
  #unsubscribeClose: () => void

  constructor (options: StreamClientOptions) {
    const settings = { ...STREAM_CLIENT_DEFAULTS, ...definedOnly(options) }
    this.log = options.log
    this.res = options.res
    this.closed = new Promise((resolve) => { this.#resolveClosed = resolve })
    this.#afterId = options.afterId ?? 0
    this.#maxBufferedBytes = settings.maxBufferedBytes
    this.#stallTimeoutMs = settings.stallTimeoutMs
    this.#chunkBytes = settings.chunkBytes
    this.#closeTimeoutMs = settings.closeTimeoutMs
    this.#onSlow = options.onSlow
    this.#onClose = options.onClose
    this.#next = this.log.indexAfter(this.#afterId)

    const res = this.res
    res.on('drain', this.#handleDrain)
    res.on('close', this.#cleanup)
    res.on('finish', this.#cleanup)
    res.on('error', this.#handleError)
    this.#unsubscribeAppend = this.log.onAppend(this.#handleAppend)
    this.#unsubscribeClose = this.log.onClose(this.#handleAppend)
    if (res.destroyed || res.writableEnded) {
      this.#cleanup()
      return
    }
    if (!res.headersSent) res.writeHead(200, { ...SSE_HEADERS, ...options.headers })
    res.socket?.setNoDelay(true)
    if (settings.heartbeatMs > 0) {
      this.#heartbeatTimer = setInterval(this.#heartbeat, settings.heartbeatMs)
      this.#heartbeatTimer.unref()
    }
    this.#writeFrame(retryFrame(settings.retryMs))
    this.#flush()
  }

  /** Id of the last event written to the socket (the afterId when none was). */
  get lastSentId (): number {
    return this.#next > 0 ? Math.max(this.#afterId, this.log.at(this.#next - 1)?.id ?? 0) : this.#afterId
  }

  /** Bytes waiting in this connection's buffers in the process. */
  get bufferedBytes (): number {
    return this.#state === 'closed' ? 0 : this.res.writableLength
  }

  get state (): State { return this.#state }

  /** Server shutdown: stop following and end the response; a socket that cannot flush is destroyed. */
  close (): Promise<void> {
    if (this.#state === 'open') this.#end(this.#closeTimeoutMs)
    return this.closed
  }

  #handleAppend = (): void => {
    if (this.#state !== 'open') return
    if (this.#waitingDrain) {
      if (this.log.bytes - this.#waitStartBytes >= this.#maxBufferedBytes) this.#disconnectSlow()
      else this.#armStallTimer()
      return
    }
    // Appends within one tick go out in one write.
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      queueMicrotask(this.#flush)
    }
  }

  #flush = (): void => {
    this.#flushScheduled = false
    if (this.#state !== 'open' || this.#waitingDrain) return
    const log = this.log
    let writable = true
    while (writable && this.#next < log.length) {
      const { data, end } = sharedChunk(log, this.#next, this.#chunkBytes)
      this.#next = end
      writable = this.#writeFrame(data)
    }
    if (this.#state !== 'open') return
    if (log.ended && this.#next >= log.length) {
      this.#end(this.#stallTimeoutMs)
    } else if (this.#waitingDrain && this.#next < log.length) {
      this.#armStallTimer()
    }
  }

  /** Returns false when the socket is backed up; writing stops until it drains. */
  #writeFrame (frame: string | Buffer): boolean {
    if (this.res.write(frame)) return true
    if (!this.#waitingDrain) {
      this.#waitingDrain = true
      this.#waitStartBytes = this.log.bytes
    }
    return false
  }

  #handleDrain = (): void => {
    if (this.#state !== 'open') return
    this.#waitingDrain = false
    this.#clearStallTimer()
    this.#flush()
  }

  #heartbeat = (): void => {
    if (this.#state === 'open' && !this.#waitingDrain) this.#writeFrame(HEARTBEAT_FRAME)
  }

  #armStallTimer (): void {
    if (this.#stallTimer !== null) return
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = null
      if (this.#state === 'open' && this.#waitingDrain) this.#disconnectSlow()
    }, this.#stallTimeoutMs)
    this.#stallTimer.unref()
  }

  #clearStallTimer (): void {
    if (this.#stallTimer === null) return
    clearTimeout(this.#stallTimer)
    this.#stallTimer = null
  }

  #disconnectSlow (): void {
    this.#detach()
    this.#onSlow?.(this)
    this.res.destroy()
    this.#cleanup()
  }

  /** Ends the response; a peer that does not take the rest within `graceMs` loses its socket. */
  #end (graceMs: number): void {
    this.#detach()
    this.#state = 'ending'
    this.res.end()
    if (this.res.writableFinished) return
    this.#closeTimer = setTimeout(() => { this.res.destroy() }, graceMs)
    this.#closeTimer.unref()
  }

  #handleError = (): void => {
    this.res.destroy()
    this.#cleanup()
  }

  /** Stops following the log and the clock; the response may still be flushing. */
  #detach (): void {
    this.#unsubscribeAppend()
    this.#unsubscribeClose()
    if (this.#heartbeatTimer !== null) clearInterval(this.#heartbeatTimer)
    this.#heartbeatTimer = null
    this.#clearStallTimer()
  }

  #cleanup = (): void => {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    this.#detach()
    if (this.#closeTimer !== null) clearTimeout(this.#closeTimer)
    this.#closeTimer = null
    this.res.off('drain', this.#handleDrain)
    this.res.off('close', this.#cleanup)
    this.res.off('finish', this.#cleanup)
    // An error listener stays: a late socket error must not become an uncaught exception.
    this.res.off('error', this.#handleError)
    this.res.on('error', ignore)
    this.#resolveClosed()
    this.#onClose?.(this)
  }
}

function ignore (): void {}

/** The last chunk encoded per log: clients at the same position share one Buffer. */
const chunks = new WeakMap<EventLog, { start: number, end: number, data: Buffer }>()

/**
 * The frames from index `start` on, up to about `maxBytes`, as one encoded Buffer. Live events
 * reach every client of a session at the same position, so the frames are joined and encoded
 * once per append rather than once per client.
 */
function sharedChunk (log: EventLog, start: number, maxBytes: number): { data: Buffer, end: number } {
  let end = start
  let length = 0
  while (end < log.length && length < maxBytes) length += log.at(end++)!.frame.length
  const cached = chunks.get(log)
  if (cached !== undefined && cached.start === start && cached.end === end) return cached
  let text = ''
  for (let i = start; i < end; i++) text += log.at(i)!.frame
  const chunk = { start, end, data: Buffer.from(text) }
  chunks.set(log, chunk)
  return chunk
}

function definedOnly (options: StreamClientSettings): StreamClientSettings {
  const out: Record<string, number> = {}
  for (const [key, value] of Object.entries(options)) {
    if (key in STREAM_CLIENT_DEFAULTS && typeof value === 'number') out[key] = value
  }
  return out
}
