import http from 'node:http'

export interface SseFrame {
  event: string
  id: number | undefined
  data: string
  /** performance.now() when the chunk holding the end of this frame arrived. */
  t: number
}

export interface SseOptions {
  headers?: Record<string, string>
  onFrame?: (frame: SseFrame) => void
  /** Keep the frames (default true). */
  keep?: boolean
  timeoutMs?: number
}

export interface SseStream {
  /** Resolves with the status once the response headers are in. */
  opened: Promise<number>
  /** Resolves when the server ends the stream. */
  done: Promise<SseFrame[]>
  close: () => void
}

/** A minimal SSE reader on node:http (no parsing beyond event/id/data lines). */
export function openSse (url: string, opts: SseOptions = {}): SseStream {
  const frames: SseFrame[] = []
  const keep = opts.keep ?? true
  let req!: http.ClientRequest
  let resolveOpened!: (status: number) => void
  let rejectOpened!: (err: Error) => void
  const opened = new Promise<number>((resolve, reject) => { resolveOpened = resolve; rejectOpened = reject })
  const done = new Promise<SseFrame[]>((resolve, reject) => {
    req = http.get(url, { headers: { accept: 'text/event-stream', ...opts.headers }, agent: false }, (res) => {
      resolveOpened(res.statusCode ?? 0)
      res.setEncoding('utf8')
      let buffer = ''
      res.on('data', (chunk: string) => {
        const t = performance.now()
        buffer += chunk
        let end = buffer.indexOf('\n\n')
        while (end !== -1) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          end = buffer.indexOf('\n\n')
          let event = 'message'
          let id: number | undefined
          let data = ''
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7)
            else if (line.startsWith('id: ')) id = Number(line.slice(4))
            else if (line.startsWith('data: ')) data = line.slice(6)
          }
          if (data === '' && id === undefined) continue
          const frame = { event, id, data, t }
          opts.onFrame?.(frame)
          if (keep) frames.push(frame)
        }
      })
      res.on('end', () => resolve(frames))
      res.on('error', reject)
    })
    req.on('error', (err) => { rejectOpened(err); reject(err) })
    if (opts.timeoutMs !== undefined) req.setTimeout(opts.timeoutMs, () => req.destroy(new Error('SSE timeout')))
  })
  done.catch(() => {})
  opened.catch(() => {})
  return { opened, done, close: () => req.destroy() }
}
