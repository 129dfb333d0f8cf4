import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises'
import { EventSource } from 'eventsource'
import { EventLog } from '../src/events/event-log.js'
import type { StreamClient } from '../src/events/stream-client.js'
import { StreamRegistry, type AttachOptions } from '../src/events/stream-registry.js'
import { retryFrame, type SessionEventType } from '../src/events/types.js'
import { onContractEvents } from './support/event-source.js'

interface Received { id: number, event: string, data: unknown }

function tempLog (t: TestContext, options: Parameters<typeof EventLog.open>[1] = {}): EventLog {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stream-client-'))
  const log = EventLog.open(path.join(dir, 'events.ndjson'), options)
  t.after(() => {
    log.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return log
}

function expected (log: EventLog, afterId = 0): Received[] {
  return log.after(afterId).map((e) => ({ id: e.id, event: e.event, data: e.data }))
}

interface Served {
  port: number
  url: string
  clients: StreamClient[]
}

/** A bare node:http server doing what the route will: cursor from header (wins) or query, attach. */
async function serve (
  t: TestContext,
  log: EventLog,
  registry: StreamRegistry,
  perRequest: (url: URL) => Partial<AttachOptions> = () => ({})
): Promise<Served> {
  const clients: StreamClient[] = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const header = req.headers['last-event-id']
    const cursor = typeof header === 'string' ? header : url.searchParams.get('last_event_id')
    const refusal = registry.check('s')
    if (refusal !== null) {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: refusal.message }))
      return
    }
    clients.push(registry.attach('s', { log, res, afterId: cursor === null ? 0 : Number(cursor), ...perRequest(url) }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    await registry.closeAll()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const { port } = server.address() as net.AddressInfo
  return { port, url: `http://127.0.0.1:${port}/`, clients }
}

/** An EventSource that collects every contract event until the terminal one. */
function follow (url: string, timeoutMs = 20_000): { done: Promise<Received[]>, opened: Promise<void>, received: Received[] } {
  const es = new EventSource(url)
  const received: Received[] = []
  let open!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  es.addEventListener('open', () => open())
  const done = new Promise<Received[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      es.close()
      reject(new Error(`timed out after ${received.length} events (last id ${received.at(-1)?.id})`))
    }, timeoutMs)
    onContractEvents(es, event => received.push(event)).then(() => {
      clearTimeout(timer)
      resolve(received)
    }, reject)
  })
  return { done, opened, received }
}

let counter = 0
/** Appends a varied mix of events (multi-byte text and newlines included), yielding to I/O as it goes. */
async function produce (log: EventLog, count: number, options: { textBytes?: number, pause?: () => Promise<unknown> } = {}): Promise<void> {
  const pause = options.pause ?? (async () => tick())
  for (let i = 0; i < count; i++) {
    const n = counter++
    const kind = n % 7
    let event: SessionEventType = 'output'
    let data: Record<string, unknown>
    if (kind === 3) {
      event = 'tool_call'
      data = { tool: 'bash', call_id: `c${n}`, args: { command: `echo ${n}` } }
    } else if (kind === 4) {
      event = 'tool_result'
      data = { tool: 'bash', call_id: `c${n}`, status: 'completed', result: { output: `${n}\n` }, duration_ms: n }
    } else if (kind === 6) {
      event = 'status'
      data = { status: 'running', progress: n % 100 }
    } else {
      const text = options.textBytes === undefined ? `line ${n}: ünïcødé ✓ 🚀\nsecond\r\n` : 'x'.repeat(options.textBytes)
      data = { type: kind === 5 ? 'stderr' : 'stdout', text, source: kind < 2 ? 'assistant' : 'tool' }
    }
    assert.ok(log.append(event, data))
    await pause()
  }
}

function complete (log: EventLog): void {
  assert.ok(log.append('complete', { final_message: 'done', files_modified: ['a.ts'], duration_ms: 1 }))
}

async function until (condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** Raw GET returning status, headers and the whole body once the server ends it. */
async function rawGet (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: http.IncomingHttpHeaders, body: string }> {
  return await new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

test('headers, retry first, exact replay, and the stream ends after the terminal event', async (t) => {
  const log = tempLog(t)
  await produce(log, 30)
  complete(log)
  const registry = new StreamRegistry({ client: { retryMs: 1234 } })
  const { url } = await serve(t, log, registry)

  const all = await rawGet(url)
  assert.equal(all.status, 200)
  assert.equal(all.headers['content-type'], 'text/event-stream; charset=utf-8')
  assert.equal(all.headers['cache-control'], 'no-cache')
  assert.equal(all.headers['x-accel-buffering'], 'no')
  assert.equal(all.headers['content-encoding'], undefined)
  assert.equal(all.body, retryFrame(1234) + log.after(0).map((e) => e.frame).join(''))

  const tail = await rawGet(`${url}?last_event_id=5`, { 'last-event-id': '28' })
  assert.equal(tail.body, retryFrame(1234) + log.after(28).map((e) => e.frame).join(''), 'the header wins over the query')
  const query = await rawGet(`${url}?last_event_id=29`)
  assert.equal(query.body, retryFrame(1234) + log.after(29).map((e) => e.frame).join(''))
  const nothing = await rawGet(url, { 'last-event-id': '31' })
  assert.equal(nothing.body, retryFrame(1234), 'caught up on an ended session: retry, then the stream ends')
  await until(() => registry.count() === 0, 'clients to be released')
  assert.equal(log.listenerCount, 0)
})

test('replay-only logs of ended sessions replay and close', async (t) => {
  const log = tempLog(t)
  await produce(log, 20)
  complete(log)
  const replay = await EventLog.read(log.file)
  const { url } = await serve(t, replay, new StreamRegistry())
  const received = await follow(url).done
  assert.deepEqual(received, expected(log))
})

test('replay hands off to live events with no gap and no duplicate while appending', async (t) => {
  const log = tempLog(t)
  await produce(log, 100)
  const { url } = await serve(t, log, new StreamRegistry())
  const followers: Array<{ afterId: number, done: Promise<Received[]> }> = []
  let joined = 0
  await produce(log, 400, {
    pause: async () => {
      // Clients join at different points: in the middle of appends, some with a cursor.
      if (log.lastId % 40 === 0) {
        const afterId = joined++ % 2 === 0 ? 0 : log.lastId - 30
        followers.push({ afterId, done: follow(afterId === 0 ? url : `${url}?last_event_id=${afterId}`).done })
      }
      await tick()
    },
  })
  complete(log)
  assert.ok(followers.length >= 10)
  for (const { afterId, done } of followers) assert.deepEqual(await done, expected(log, afterId))
})

test('a connection cut repeatedly mid-stream resumes by Last-Event-ID: received == log', async (t) => {
  const log = tempLog(t)
  const { port } = await serve(t, log, new StreamRegistry({ client: { retryMs: 5 } }))
  let cuts = 0
  // A TCP proxy that forwards a random number of bytes, then cuts both sides (mid-frame, mid-character).
  const sockets = new Set<net.Socket>()
  const proxy = net.createServer((downstream) => {
    sockets.add(downstream)
    downstream.on('close', () => sockets.delete(downstream))
    let budget = 150 + Math.floor(Math.random() * 3000)
    const upstream = net.connect(port, '127.0.0.1')
    downstream.on('error', () => {})
    upstream.on('error', () => {})
    downstream.pipe(upstream)
    upstream.on('data', (chunk: Buffer) => {
      if (chunk.length < budget) {
        budget -= chunk.length
        downstream.write(chunk)
        return
      }
      cuts++
      downstream.end(chunk.subarray(0, budget))
      upstream.destroy()
    })
    upstream.on('close', () => downstream.destroy())
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => proxy.close(resolve))
  })
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}/`

  await produce(log, 20)
  const fromStart = follow(proxyUrl)
  const withCursor = follow(`${proxyUrl}?last_event_id=10`)
  await produce(log, 300, { pause: async () => sleep(1) })
  complete(log)
  assert.deepEqual(await fromStart.done, expected(log))
  assert.deepEqual(await withCursor.done, expected(log, 10))
  assert.ok(cuts >= 10, `the connection was cut ${cuts} times`)
})

test('200 concurrent clients all receive the identical sequence', async (t) => {
  const log = tempLog(t)
  await produce(log, 50)
  const registry = new StreamRegistry()
  const { url } = await serve(t, log, registry)
  const followers = Array.from({ length: 200 }, () => follow(url, 25_000))
  await produce(log, 100, {
    pause: async () => {
      if (log.lastId === 120) await Promise.all(followers.map(async (f) => f.opened))
      await tick()
    },
  })
  assert.equal(registry.count('s'), 200)
  complete(log)
  const want = expected(log)
  for (const f of followers) assert.deepEqual(await f.done, want)
  await until(() => registry.count() === 0, 'all 200 clients to be released')
  assert.equal(log.listenerCount, 0)
})

test('stalled clients are disconnected, the others keep receiving, buffers stay bounded', async (t) => {
  const log = tempLog(t, { maxBytes: 256 * 1024 * 1024 })
  const registry = new StreamRegistry({ client: { heartbeatMs: 0 } })
  const { port, url, clients } = await serve(t, log, registry, (u) => {
    const mode = u.searchParams.get('mode')
    // One stalled socket is caught by the byte bound, the other by the stall timer.
    if (mode === 'bytes') return { maxBufferedBytes: 512 * 1024, stallTimeoutMs: 120_000 }
    if (mode === 'timer') return { maxBufferedBytes: 1024 * 1024 * 1024, stallTimeoutMs: 300 }
    return {}
  })
  const followers = Array.from({ length: 3 }, () => follow(url, 60_000))
  await Promise.all(followers.map(async (f) => f.opened))
  for (const mode of ['bytes', 'timer']) {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`GET /?mode=${mode} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`)
    })
    socket.pause()
    socket.on('error', () => {})
    t.after(() => { socket.destroy() })
  }
  await until(() => registry.count() === 5, 'five clients')
  const stalledClients = clients.slice(3)

  let maxBuffered = 0
  const limit = 256 * 1024 * 1024
  while (stalledClients.some((c) => c.state !== 'closed') && log.bytes < limit) {
    await produce(log, 1, { textBytes: 32 * 1024 })
    for (const c of stalledClients) maxBuffered = Math.max(maxBuffered, c.bufferedBytes)
  }
  complete(log)
  assert.deepEqual(stalledClients.map((c) => c.state), ['closed', 'closed'], 'both stalled clients were disconnected')
  assert.equal(registry.slowClientsDisconnected, 2)
  // A cursor client holds at most one coalesced chunk plus the socket's own high-water mark in memory.
  assert.ok(maxBuffered <= 256 * 1024, `a stalled client buffered ${maxBuffered} bytes`)
  const want = expected(log)
  for (const f of followers) assert.deepEqual(await f.done, want)
})

test('heartbeats carry no id and come at the configured interval, only between events', async (t) => {
  const log = tempLog(t)
  log.append('status', { status: 'running', progress: 0 })
  const registry = new StreamRegistry({ client: { heartbeatMs: 40 } })
  const { url } = await serve(t, log, registry)
  const started = Date.now()
  let body = ''
  const req = http.get(url, { agent: false }, (res) => {
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => { body += chunk })
  })
  req.on('error', () => {})
  t.after(() => { req.destroy() })
  const heartbeats = (): number => body.split('\n\n').filter((f) => f.startsWith('event: heartbeat')).length
  await until(() => heartbeats() >= 2, 'two heartbeats')
  log.append('status', { status: 'running', progress: 10 })
  await until(() => heartbeats() >= 5, 'five heartbeats')
  const elapsed = Date.now() - started
  const frames = body.split('\n\n').filter((f) => f !== '')
  for (const frame of frames.filter((f) => f.startsWith('event: heartbeat'))) {
    assert.equal(frame, 'event: heartbeat\ndata: {}')
  }
  assert.ok(heartbeats() <= Math.floor(elapsed / 40) + 1, `${heartbeats()} heartbeats in ${elapsed} ms: not more often than the interval`)
  const ids = frames.filter((f) => f.includes('\nid: ')).map((f) => Number(/\nid: (\d+)/.exec(f)?.[1]))
  assert.deepEqual(ids, [1, 2])
  assert.equal(frames[0], 'retry: 2000')
})

test('closing clients frees them; limits refuse extra clients; closeAll ends every stream', async (t) => {
  const log = tempLog(t)
  log.append('status', { status: 'running', progress: 0 })
  const registry = new StreamRegistry({ maxClientsPerSession: 3, maxClients: 3 })
  const { url, clients } = await serve(t, log, registry)

  const ends: Array<Promise<void>> = []
  const requests = Array.from({ length: 3 }, () => {
    let ended!: () => void
    ends.push(new Promise<void>((resolve) => { ended = resolve }))
    const req = http.get(url, { agent: false }, (res) => {
      res.on('end', ended)
      res.resume()
    })
    req.on('error', () => {})
    return req
  })
  await until(() => registry.count('s') === 3, 'three clients')
  assert.equal(registry.check('s')?.reason, 'session_limit')
  assert.equal(registry.check('other')?.reason, 'total_limit')
  const refused = await rawGet(url)
  assert.equal(refused.status, 503)

  requests[0].destroy()
  await until(() => registry.count('s') === 2, 'a disconnected client to be released')
  await clients[0].closed
  assert.equal(clients[0].state, 'closed')
  assert.equal(log.listenerCount, 2 * 2, 'each live client holds one append and one close listener')

  await registry.closeAll()
  await Promise.all(ends.slice(1))
  assert.equal(registry.count(), 0)
  assert.deepEqual(registry.stats(), { clients: 0, sessions: 0, slowClientsDisconnected: 0 })
  assert.equal(log.listenerCount, 0)
  assert.equal(registry.check('s')?.reason, 'shutting_down')
})

test('closing the log ends its streams after what is stored', async (t) => {
  const log = tempLog(t)
  await produce(log, 5)
  const registry = new StreamRegistry()
  const { url } = await serve(t, log, registry)
  const pending = rawGet(url)
  await until(() => registry.count() === 1, 'one client')
  log.close()
  const { body } = await pending
  assert.equal(body, retryFrame(2000) + log.after(0).map((e) => e.frame).join(''))
})
