import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import {
  buildFrame, framePrefix, isSessionEventType, isTerminal,
  type LoggedEvent, type SessionEventType,
} from './types.js'

export const DEFAULT_MAX_LOG_BYTES = 32 * 1024 * 1024
export const DEFAULT_RESERVE_BYTES = 1024 * 1024
export const DEFAULT_TRUNCATED_OUTPUT_BYTES = 4 * 1024
export const LOG_LIMIT_CODE = 'log_limit'

export interface EventLogOptions {
  /** Past this many bytes `output` events are dropped and `tool_result` outputs truncated. */
  maxBytes?: number
  /** Past `maxBytes + reserveBytes` only the terminal event is still stored. */
  reserveBytes?: number
  /** How much of a `tool_result`'s `result.output` is kept once the log is past `maxBytes`. */
  truncatedOutputBytes?: number
  /**
   * `writeSync` alone already survives the death of the process (the page cache belongs to the
   * kernel); fsync only adds durability against a crash of the node itself.
   */
  fsync?: 'never' | 'terminal' | 'always'
  /** A listener threw: the log keeps notifying the others. Defaults to a process warning. */
  onListenerError?: (err: unknown) => void
}

export type AppendListener = (event: LoggedEvent) => void

/**
 * A stored event keeps only its frame: `data` is parsed back from it on demand, so a log in memory
 * costs about its size on disk rather than that plus a tree of objects.
 */
class StoredEvent implements LoggedEvent {
  readonly id: number
  readonly event: SessionEventType
  readonly frame: string

  constructor (id: number, event: SessionEventType, frame: string) {
    this.id = id
    this.event = event
    this.frame = frame
  }

  get data (): Record<string, unknown> {
    return JSON.parse(this.frame.slice(framePrefix(this.id, this.event).length, -2)) as Record<string, unknown>
  }
}

interface Loaded {
  events: StoredEvent[]
  lastId: number
  terminal: StoredEvent | null
  limitNoted: boolean
  /** Bytes of the file up to its last newline: anything after it is a line torn by a crash. */
  validBytes: number
  skippedLines: number
}

function linePrefix (id: number, event: SessionEventType): string {
  return `{"id":${id},"event":"${event}","data":`
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function parseLog (buf: Buffer): Loaded {
  const loaded: Loaded = { events: [], lastId: 0, terminal: null, limitNoted: false, validBytes: 0, skippedLines: 0 }
  loaded.validBytes = buf.lastIndexOf(0x0a) + 1
  let start = 0
  while (start < loaded.validBytes) {
    const end = buf.indexOf(0x0a, start)
    const line = buf.toString('utf8', start, end)
    start = end + 1
    if (line === '') continue
    let parsed: unknown
    try {
      parsed = JSON.parse(line)
    } catch {
      loaded.skippedLines++
      continue
    }
    if (!isRecord(parsed) || loaded.terminal !== null) {
      loaded.skippedLines++
      continue
    }
    const { id, event, data } = parsed
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= loaded.lastId ||
      !isSessionEventType(event) || !isRecord(data)) {
      loaded.skippedLines++
      continue
    }
    const prefix = linePrefix(id, event)
    // Lines this module wrote carry the data's JSON verbatim: reuse it instead of re-serializing.
    const json = line.startsWith(prefix) ? line.slice(prefix.length, -1) : JSON.stringify(data)
    const stored = new StoredEvent(id, event, buildFrame(id, event, json))
    loaded.events.push(stored)
    loaded.lastId = id
    if (isTerminal(event, data)) loaded.terminal = stored
    if (event === 'error' && data.code === LOG_LIMIT_CODE) loaded.limitNoted = true
  }
  return loaded
}

function writeFully (fd: number, buf: Buffer): void {
  let offset = 0
  while (offset < buf.length) offset += fs.writeSync(fd, buf, offset, buf.length - offset)
}

function truncateUtf8 (text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text
  // Decoding a cut buffer drops a split trailing character instead of emitting half of it.
  return Buffer.from(text).subarray(0, maxBytes).toString('utf8').replace(/\uFFFD$/, '')
}

function defaultListenerError (err: unknown): void {
  process.emitWarning(err instanceof Error ? err : String(err), 'EventLogListenerError')
}

/**
 * The durable, append-only event log of one session: one JSON line per event in an NDJSON file,
 * written synchronously before anyone is told about the event, and kept in memory (as ready SSE
 * frames) while the log is open so stream clients can replay it by index.
 */
export class EventLog {
  readonly file: string
  readonly readOnly: boolean
  /** Complete lines the loader could not use (never expected: kept for diagnostics). */
  readonly skippedLines: number
  readonly #maxBytes: number
  readonly #reserveBytes: number
  readonly #truncatedOutputBytes: number
  readonly #fsync: 'never' | 'terminal' | 'always'
  readonly #onListenerError: (err: unknown) => void
  readonly #events: StoredEvent[]
  readonly #listeners = new Set<AppendListener>()
  readonly #closeListeners = new Set<() => void>()
  #fd: number | null
  #bytes: number
  #lastId: number
  #terminal: StoredEvent | null
  #limitNoted: boolean
  #closed = false
  #notifying: LoggedEvent[] | null = null

  private constructor (file: string, loaded: Loaded, fd: number | null, options: EventLogOptions) {
    this.file = file
    this.readOnly = fd === null
    this.skippedLines = loaded.skippedLines
    this.#maxBytes = options.maxBytes ?? DEFAULT_MAX_LOG_BYTES
    this.#reserveBytes = options.reserveBytes ?? DEFAULT_RESERVE_BYTES
    this.#truncatedOutputBytes = options.truncatedOutputBytes ?? DEFAULT_TRUNCATED_OUTPUT_BYTES
    this.#fsync = options.fsync ?? 'terminal'
    this.#onListenerError = options.onListenerError ?? defaultListenerError
    this.#events = loaded.events
    this.#bytes = loaded.validBytes
    this.#lastId = loaded.lastId
    this.#terminal = loaded.terminal
    this.#limitNoted = loaded.limitNoted
    this.#fd = fd
    if (this.#terminal !== null) this.#releaseFd()
  }

  /**
   * Opens (creating it if needed) the log for appending. What a crash left behind is recovered:
   * a torn last line is cut away (nobody was ever told about it), and ids continue after the
   * highest stored one.
   */
  static open (file: string, options: EventLogOptions = {}): EventLog {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    const fd = fs.openSync(file, 'a+', 0o600)
    try {
      const loaded = parseLog(fs.readFileSync(fd))
      if (fs.fstatSync(fd).size !== loaded.validBytes) fs.ftruncateSync(fd, loaded.validBytes)
      return new EventLog(file, loaded, fd, options)
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
  }

  /** A replay-only load (no file descriptor kept, `append` refuses) for serving ended sessions. */
  static async read (file: string): Promise<EventLog> {
    return new EventLog(file, parseLog(await fsp.readFile(file)), null, {})
  }

  /** Deletes a session's directory (its log included); a missing directory is not an error. */
  static async remove (dir: string): Promise<void> {
    await fsp.rm(dir, { recursive: true, force: true })
  }

  get lastId (): number { return this.#lastId }
  get length (): number { return this.#events.length }
  /** Bytes stored in the file. */
  get bytes (): number { return this.#bytes }
  get terminal (): LoggedEvent | null { return this.#terminal }
  get closed (): boolean { return this.#closed }
  /** No event will ever be appended: the terminal event is stored, or the log is closed or read-only. */
  get ended (): boolean { return this.#terminal !== null || this.#closed || this.readOnly }
  /** Whether the size limit was reached (the `log_limit` error event has been stored). */
  get limitReached (): boolean { return this.#limitNoted }
  get listenerCount (): number { return this.#listeners.size + this.#closeListeners.size }

  at (index: number): LoggedEvent | undefined {
    return this.#events[index]
  }

  /** The index of the first event whose id is greater than `id` (`length` when there is none). */
  indexAfter (id: number): number {
    let lo = 0
    let hi = this.#events.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#events[mid].id <= id) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  after (id: number): LoggedEvent[] {
    return this.#events.slice(this.indexAfter(id))
  }

  * eventsAfter (id: number): Generator<LoggedEvent, void, undefined> {
    for (let i = this.indexAfter(id); i < this.#events.length; i++) yield this.#events[i]
  }

  /**
   * Stores an event and then tells the listeners. Returns the stored event, or null when nothing
   * was stored: the session already ended (or the log is closed), or the size limit dropped it.
   * Throws when the write itself fails (the file is left as it was).
   */
  append (event: SessionEventType, data: Record<string, unknown>): LoggedEvent | null {
    if (this.ended) return null
    if (!isSessionEventType(event)) throw new TypeError(`unknown event type: ${String(event)}`)
    let payload = data.timestamp === undefined ? { ...data, timestamp: new Date().toISOString() } : data
    let json = JSON.stringify(payload)
    const terminal = isTerminal(event, payload)
    if (!terminal && this.#bytes + Buffer.byteLength(json) > this.#maxBytes) {
      if (event === 'output') return this.#noteLimit()
      if (event === 'tool_result') {
        payload = this.#truncateResult(payload)
        json = JSON.stringify(payload)
      }
      if (this.#bytes + Buffer.byteLength(json) > this.#maxBytes + this.#reserveBytes) return this.#noteLimit()
    }
    return this.#write(event, payload, json, terminal)
  }

  /** Listeners run synchronously, in order, after the event is in the file. */
  onAppend (listener: AppendListener): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** Called once when the log is closed (not when it merely reaches its terminal event). */
  onClose (listener: () => void): () => void {
    if (this.#closed) {
      queueMicrotask(listener)
      return () => {}
    }
    this.#closeListeners.add(listener)
    return () => { this.#closeListeners.delete(listener) }
  }

  /**
   * Stops appending and releases the file. Events stay readable through this object for whoever
   * still holds it (a stream client finishing its replay); memory goes with the last reference.
   */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#releaseFd()
    this.#listeners.clear()
    const listeners = [...this.#closeListeners]
    this.#closeListeners.clear()
    for (const listener of listeners) {
      try {
        listener()
      } catch (err) {
        this.#onListenerError(err)
      }
    }
  }

  #noteLimit (): null {
    if (!this.#limitNoted) {
      this.#limitNoted = true
      const payload = {
        error: `The session's event log reached its size limit of ${this.#maxBytes} bytes: ` +
          'further output was dropped and tool results are truncated.',
        code: LOG_LIMIT_CODE,
        fatal: false,
        timestamp: new Date().toISOString(),
      }
      this.#write('error', payload, JSON.stringify(payload), false)
    }
    return null
  }

  #truncateResult (payload: Record<string, unknown>): Record<string, unknown> {
    const result = payload.result
    if (!isRecord(result) || typeof result.output !== 'string') return payload
    const output = truncateUtf8(result.output, this.#truncatedOutputBytes)
    if (output === result.output) return payload
    return { ...payload, result: { ...result, output: `${output}\n[output truncated: event log size limit reached]` } }
  }

  #write (event: SessionEventType, data: Record<string, unknown>, json: string, terminal: boolean): LoggedEvent {
    const fd = this.#fd
    if (fd === null) throw new Error('event log is not writable')
    const id = this.#lastId + 1
    const line = Buffer.from(`${linePrefix(id, event)}${json}}\n`)
    try {
      writeFully(fd, line)
    } catch (err) {
      // A partial line must not stay in front of the next one.
      try { fs.ftruncateSync(fd, this.#bytes) } catch {}
      throw err
    }
    this.#bytes += line.length
    this.#lastId = id
    const stored = new StoredEvent(id, event, buildFrame(id, event, json))
    this.#events.push(stored)
    if (this.#fsync === 'always' || (terminal && this.#fsync === 'terminal')) {
      // Best effort: the line is already safe from a process crash, and the id is taken.
      try { fs.fdatasyncSync(fd) } catch {}
    }
    if (terminal) {
      this.#terminal = stored
      this.#releaseFd()
    }
    const logged: LoggedEvent = { id, event, data, frame: stored.frame }
    this.#notify(logged)
    return logged
  }

  #notify (logged: LoggedEvent): void {
    // An append from inside a listener is delivered after the current event reached everyone.
    if (this.#notifying !== null) {
      this.#notifying.push(logged)
      return
    }
    const queue = [logged]
    this.#notifying = queue
    try {
      for (let i = 0; i < queue.length; i++) {
        for (const listener of this.#listeners) {
          try {
            listener(queue[i])
          } catch (err) {
            this.#onListenerError(err)
          }
        }
      }
    } finally {
      this.#notifying = null
    }
  }

  #releaseFd (): void {
    if (this.#fd === null) return
    const fd = this.#fd
    this.#fd = null
    fs.closeSync(fd)
  }
}
