// Many SSE clients of one stream, in a process of their own (forked by a test) so that the sidecar
// being measured does not also pay for reading, and its memory numbers are its own.
// argv: <stream url> <client count>. IPC out: { attached } as clients reach their second event,
// then { results: [{ ids, sha256, terminal, error }] } when every stream has ended.
import { createHash } from 'node:crypto'
import http from 'node:http'

const HEARTBEAT = Buffer.from('event: heartbeat\ndata: {}\n\n')
const RETRY = Buffer.from('retry:')
const SEPARATOR = Buffer.from('\n\n')

export interface FanoutResult { ids: number[], sha256: string, terminal: boolean, error: string | undefined }

function isTerminalFrame (frame: Buffer): boolean {
  const head = frame.subarray(0, 64).toString('latin1')
  if (head.startsWith('event: complete\n')) return true
  if (!head.startsWith('event: error\n') && !head.startsWith('event: status\n')) return false
  const text = frame.toString('utf8')
  const data = JSON.parse(text.slice(text.indexOf('\ndata: ') + 7, -2)) as Record<string, unknown>
  return head.startsWith('event: error\n') ? data.fatal === true : data.status === 'cancelled'
}

/** Reads one stream as bytes: each complete frame but heartbeats and `retry:` is hashed and its id kept. */
function follow (url: string, onSecondEvent: () => void): Promise<FanoutResult> {
  return new Promise((resolve) => {
    const hash = createHash('sha256')
    const result: FanoutResult = { ids: [], sha256: '', terminal: false, error: undefined }
    let pending: Buffer[] = []
    const onFrame = (frame: Buffer): void => {
      if (frame.equals(HEARTBEAT) || frame.subarray(0, RETRY.length).equals(RETRY)) return
      hash.update(frame)
      const idLine = /\nid: (\d+)\n/.exec(frame.subarray(0, 64).toString('latin1'))
      result.ids.push(idLine === null ? -1 : Number(idLine[1]))
      if (result.ids.length === 2) onSecondEvent()
      if (isTerminalFrame(frame)) result.terminal = true
    }
    const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) result.error = `status ${res.statusCode}`
      res.on('data', (chunk: Buffer) => {
        let rest = chunk
        // A separator may straddle the previous chunk and this one.
        const lastPending = pending.at(-1)
        if (lastPending !== undefined && lastPending[lastPending.length - 1] === 0x0a && rest[0] === 0x0a) {
          onFrame(Buffer.concat([...pending, rest.subarray(0, 1)]))
          pending = []
          rest = rest.subarray(1)
        }
        for (let end = rest.indexOf(SEPARATOR); end !== -1; end = rest.indexOf(SEPARATOR)) {
          onFrame(pending.length > 0 ? Buffer.concat([...pending, rest.subarray(0, end + 2)]) : rest.subarray(0, end + 2))
          pending = []
          rest = rest.subarray(end + 2)
        }
        if (rest.length > 0) pending.push(rest)
      })
      res.on('error', (err) => { result.error ??= err.message })
      res.on('close', () => {
        result.sha256 = hash.digest('hex')
        resolve(result)
      })
    })
    req.on('error', (err) => {
      result.error ??= err.message
      result.sha256 = hash.digest('hex')
      resolve(result)
    })
  })
}

const [url, count] = process.argv.slice(2)
if (url !== undefined && count !== undefined && process.send !== undefined) {
  const send = process.send.bind(process)
  let attached = 0
  const results = await Promise.all(Array.from({ length: Number(count) }, async () =>
    await follow(url, () => { send({ attached: ++attached }) })))
  send({ results }, () => process.exit(0))
}
