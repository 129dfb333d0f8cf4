import http from 'node:http'

/** One SSE frame as sent (`event:`/`id:`/`data:` lines and the blank line), parsed. */
export interface Frame {
  raw: string
  event: string | undefined
  id: number | undefined
  data: string | undefined
  retry: boolean
}

export function parseFrame (raw: string): Frame {
  let event: string | undefined
  let id: number | undefined
  let data: string | undefined
  let retry = false
  for (const line of raw.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7)
    else if (line.startsWith('id: ')) id = Number(line.slice(4))
    else if (line.startsWith('data: ')) data = data === undefined ? line.slice(6) : `${data}\n${line.slice(6)}`
    else if (line.startsWith('retry:')) retry = true
  }
  return { raw, event, id, data, retry }
}

/** Splits a text stream into frames as it arrives; frames may span chunks (and be megabytes long). */
export class FrameSplitter {
  #buf = ''
  #scanFrom = 0

  constructor (private readonly onFrame: (frame: Frame) => void) {}

  push (chunk: string): void {
    this.#buf += chunk
    for (;;) {
      const end = this.#buf.indexOf('\n\n', this.#scanFrom)
      if (end === -1) {
        this.#scanFrom = Math.max(0, this.#buf.length - 1)
        return
      }
      const raw = this.#buf.slice(0, end + 2)
      this.#buf = this.#buf.slice(end + 2)
      this.#scanFrom = 0
      this.onFrame(parseFrame(raw))
    }
  }

  /** What arrived after the last complete frame. */
  get rest (): string { return this.#buf }
}

export function splitFrames (text: string): Frame[] {
  const frames: Frame[] = []
  const splitter = new FrameSplitter(frame => frames.push(frame))
  splitter.push(text)
  return frames
}

export interface OpenedStream {
  req: http.ClientRequest
  /** The response's status; rejects if no response arrives. */
  status: Promise<number>
  /** Resolves when the response ends or the connection closes (an error included). */
  done: Promise<{ error: Error | undefined }>
}

/** A plain HTTP GET of an SSE stream on its own connection, frames handed over as they arrive. */
export function openStream (url: string, onFrame: (frame: Frame) => void, headers: Record<string, string> = {}): OpenedStream {
  const splitter = new FrameSplitter(onFrame)
  let resolveStatus!: (status: number) => void
  let rejectStatus!: (err: Error) => void
  const status = new Promise<number>((resolve, reject) => { resolveStatus = resolve; rejectStatus = reject })
  status.catch(() => {})
  let req!: http.ClientRequest
  const done = new Promise<{ error: Error | undefined }>((resolve) => {
    let error: Error | undefined
    req = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      resolveStatus(res.statusCode ?? 0)
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => splitter.push(chunk))
      res.on('error', (err) => { error ??= err })
      res.on('close', () => resolve({ error }))
    })
    req.on('error', (err) => {
      error ??= err
      rejectStatus(err)
      resolve({ error })
    })
  })
  return { req, status, done }
}
