// The stream section of the contract (issue 4, "Done when"), end to end: the production app on a
// real socket, the real OpenCode engine, a scripted model. Sessions are held open by a bash tool
// that waits for a file the test creates, so "while the session runs" is a fact, not a timing.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { EventSource } from 'eventsource'
import {
  createSession, getStatus, readStream, scriptedSession, sleep, startHarness, waitStatus,
  type Harness, type StreamedEvent,
} from './support/harness.js'
import type { FanoutResult } from './support/fanout-clients.js'
import { byMarker, scenario, type Handler } from './support/model-server.js'
import { openStream, splitFrames, type Frame } from './support/sse-frames.js'
import { onContractEvents } from './support/event-source.js'

const HEARTBEAT_FRAME = 'event: heartbeat\ndata: {}\n\n'

let h: Harness
const handlers: Record<string, Handler> = {}

before(async () => {
  h = await startHarness({ HEARTBEAT_INTERVAL: '1' })
  // Anything the engine asks besides a session's own conversation (e.g. a title) gets a short answer.
  h.model.setHandler(byMarker(handlers, () => ({ text: 'ok' })))
})

after(async () => { await h?.close() })

/** A bash command that runs until the test creates `file` in the workspace, printing while it waits. */
function gate (file: string, tick = false): string {
  const body = tick ? 'i=$((i+1)); echo "tick $i"; sleep 0.1' : 'sleep 0.05'
  return `i=0; while [ ! -f ${file} ]; do ${body}; done; echo released`
}

function release (file: string): void {
  fs.writeFileSync(path.join(h.dirs.workspaceDir, file), '')
}

async function until (what: string, condition: () => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

function streamUrl (base: string, id: string): string {
  return `${base}/sessions/${id}/stream`
}

/** The session's events as a stream delivers them, heartbeats left out. */
async function events (id: string): Promise<StreamedEvent[]> {
  return (await readStream(h, id)).filter(e => e.event !== 'heartbeat')
}

/** The raw frames of an ended session's replay, without `retry:`. */
async function replayFrames (id: string): Promise<Frame[]> {
  const res = await fetch(streamUrl(h.url, id), { headers: { accept: 'text/event-stream' }, signal: AbortSignal.timeout(60_000) })
  assert.equal(res.status, 200)
  return splitFrames(await res.text()).filter(f => !f.retry && f.raw !== HEARTBEAT_FRAME)
}

function mb (bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

test('an EventSource over a connection cut again and again mid-session receives exactly the log', async (t) => {
  handlers['CUT-MARKER'] = scenario([
    { toolCalls: [{ name: 'bash', args: { command: gate('cut.go', true), description: 'tick until released' } }] },
    { text: Array.from({ length: 60 }, (_, i) => `word${i} ünïcødé ✓`).join(' '), chunkDelayMs: 15 },
  ])
  const session = await createSession(h, scriptedSession(h, 'CUT-MARKER: tick'))
  const id = session.session_id

  // A TCP proxy that cuts every connection after a random number of bytes (mid-frame,
  // mid-character) or a random lifetime, whichever comes first.
  const target = Number(new URL(h.url).port)
  let connections = 0
  let cuts = 0
  const sockets = new Set<net.Socket>()
  const proxy = net.createServer((down) => {
    connections++
    sockets.add(down)
    const up = net.connect(target, '127.0.0.1')
    sockets.add(up)
    let budget = 500 + Math.floor(Math.random() * 6000)
    const cut = (last?: Buffer): void => {
      if (down.destroyed || down.writableEnded) return
      cuts++
      clearTimeout(timer)
      if (last === undefined) down.end()
      else down.end(last)
      up.destroy()
      setTimeout(() => down.destroy(), 50).unref()
    }
    const timer = setTimeout(cut, 200 + Math.floor(Math.random() * 600))
    down.on('error', () => {})
    up.on('error', () => {})
    down.pipe(up)
    up.on('data', (chunk: Buffer) => {
      if (chunk.length < budget) {
        budget -= chunk.length
        down.write(chunk)
      } else {
        cut(chunk.subarray(0, budget))
      }
    })
    up.on('close', () => { clearTimeout(timer); down.destroy() })
    down.on('close', () => { sockets.delete(down); up.destroy() })
    up.on('close', () => sockets.delete(up))
  })
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise(resolve => proxy.close(resolve))
  })

  const es = new EventSource(streamUrl(`http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, id))
  t.after(() => es.close())
  const received: StreamedEvent[] = []
  let opens = 0
  es.addEventListener('open', () => { opens++ })
  const done = onContractEvents(es, event => received.push(event))

  // The session is held running until the stream has been cut a few times with events flowing.
  await until('cuts mid-session', () => cuts >= 3 && opens >= 4 && received.length >= 10)
  assert.equal((await getStatus(h, id)).status, 'running')
  const cutsWhileRunning = cuts
  release('cut.go')
  await done
  await waitStatus(h, id, s => s.status === 'completed')

  const log = await events(id)
  assert.deepEqual(log.map(e => e.id), log.map((_, i) => i + 1), 'log ids are 1..n')
  assert.deepEqual(received, log)
  const toolText = log.filter(e => e.event === 'output' && e.data.source === 'tool').map(e => e.data.text).join('')
  assert.match(toolText, /^tick 1\ntick 2\n/)
  t.diagnostic(`${log.length} events; ${connections} connections, ${cuts} cuts (${cutsWhileRunning} while the session ran), ${opens} opens`)
})

test('a tool printing 2,000 lines streams every line, in order, as tool output events', async (t) => {
  handlers['SEQ-MARKER'] = scenario([
    // Four bursts of 500 lines: the output streams while the tool runs.
    { toolCalls: [{ name: 'bash', args: { command: 'for i in 0 1 2 3; do seq $((i*500+1)) $((i*500+500)); sleep 0.3; done', description: 'count' } }] },
    { text: 'Counted.' },
  ])
  const session = await createSession(h, scriptedSession(h, 'SEQ-MARKER: count'))
  // Connected while the session runs: replay of what happened so far, then live events.
  const streamed = await events(session.session_id)
  assert.equal(streamed.at(-1)?.event, 'complete')
  const call = streamed.find(e => e.event === 'tool_call' && e.data.tool === 'bash')
  assert.ok(call, 'a bash tool_call')
  const callId = call.data.call_id
  const outputs = streamed.filter(e => e.event === 'output' && e.data.source === 'tool' && e.data.call_id === callId)
  const expected = Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join('')
  assert.equal(outputs.map(e => e.data.text).join(''), expected)
  for (const e of outputs) assert.equal(e.data.type, 'stdout')
  const resultIndex = streamed.findIndex(e => e.event === 'tool_result' && e.data.call_id === callId)
  assert.ok(streamed.indexOf(outputs.at(-1)!) < resultIndex, 'the output precedes the tool_result')
  assert.deepEqual(streamed, await events(session.session_id))
  t.diagnostic(`2000 lines (${expected.length} bytes) in ${outputs.length} output events; ${streamed.length} events in all`)
})

function hashFrames (frames: Frame[]): string {
  const hash = createHash('sha256')
  for (const f of frames) hash.update(f.raw)
  return hash.digest('hex')
}

test('200 concurrent clients on one running session receive the identical sequence; a stalled client is dropped', async (t) => {
  // Turns of ~2 MB of assistant text continue until the server has dropped the stalled client
  // (its kernel buffers absorb a few MB first), then the session completes.
  let stalledDropped = false
  const bulk = (turn: number): string =>
    Array.from({ length: 500 }, (_, i) => `t${turn}w${i}:${'abcdefghij'.repeat(400)}`).join(' ')
  handlers['FANOUT-MARKER'] = scenario([
    { toolCalls: [{ name: 'bash', args: { command: gate('fanout.go'), description: 'wait' } }] },
    (request) => stalledDropped
      ? { text: 'Fan-out done.' }
      : request.assistantTurns > 12
        ? { text: 'Gave up: the stalled client was never dropped.' }
        : { text: bulk(request.assistantTurns), toolCalls: [{ name: 'bash', args: { command: `echo turn ${request.assistantTurns}`, description: 'turn' } }] },
  ])
  const session = await createSession(h, scriptedSession(h, 'FANOUT-MARKER: fan out'))
  const id = session.session_id
  await waitStatus(h, id, s => s.status === 'running')

  const memory = { before: process.memoryUsage(), peakRss: 0, peakHeap: 0 }
  const sampler = setInterval(() => {
    const m = process.memoryUsage()
    memory.peakRss = Math.max(memory.peakRss, m.rss)
    memory.peakHeap = Math.max(memory.peakHeap, m.heapUsed)
  }, 100)
  t.after(() => clearInterval(sampler))

  // The stalled client: a raw socket that sends its request and never reads. Its server-side
  // socket is found by its port, to see the server close it.
  let stalledServerSide: net.Socket | undefined
  const onConnection = (socket: net.Socket): void => {
    if (socket.remotePort === stalled.localPort) stalledServerSide = socket
  }
  h.app.server.on('connection', onConnection)
  t.after(() => { h.app.server.off('connection', onConnection) })
  const stalled = net.connect(Number(new URL(h.url).port), '127.0.0.1')
  t.after(() => { stalled.destroy() })
  stalled.on('error', () => {})
  stalled.pause()
  await new Promise<void>(resolve => stalled.once('connect', resolve))
  stalled.write(`GET /sessions/${id}/stream HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n`)
  await until('the server to accept the stalled client', () => stalledServerSide !== undefined)
  let droppedAfterBytes = 0
  stalledServerSide!.once('close', () => {
    stalledDropped = true
    droppedAfterBytes = stalledServerSide!.bytesWritten
  })

  // The 200 clients live in a child process: this process is the sidecar being measured.
  const clients = fork(fileURLToPath(new URL('./support/fanout-clients.ts', import.meta.url)), [streamUrl(h.url, id), '200'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  t.after(() => { clients.kill('SIGKILL') })
  let attached = 0
  const results = new Promise<FanoutResult[]>((resolve, reject) => {
    clients.on('message', (message: { attached?: number, results?: FanoutResult[] }) => {
      if (message.attached !== undefined) attached = message.attached
      if (message.results !== undefined) resolve(message.results)
    })
    clients.on('exit', code => reject(new Error(`the client process exited (${code}) without results`)))
  })
  results.catch(() => {})
  // Everyone has the replay (through `status: running`) before the session moves on.
  await until('all 200 clients to attach', () => attached === 200)
  assert.equal((await getStatus(h, id)).status, 'running')
  release('fanout.go')
  const releasedAt = Date.now()

  const received = await results
  const streamedMs = Date.now() - releasedAt
  const final = await waitStatus(h, id, s => s.status === 'completed')
  clearInterval(sampler)
  const afterAll = process.memoryUsage()

  assert.ok(stalledDropped, 'the server dropped the stalled client')
  assert.equal(final.final_message, 'Fan-out done.', 'the stalled client was dropped while the session ran')
  const frames = await replayFrames(id)
  const want = { sha256: hashFrames(frames), ids: frames.map(f => f.id ?? -1) }
  assert.deepEqual(want.ids, want.ids.map((_, i) => i + 1))
  assert.equal(received.length, 200)
  for (const [i, r] of received.entries()) {
    assert.equal(r.error, undefined, `client ${i} ended without error`)
    assert.ok(r.terminal, `client ${i} got the terminal event`)
    assert.deepEqual(r.ids, want.ids, `client ${i} ids`)
    assert.equal(r.sha256, want.sha256, `client ${i} bytes`)
  }

  // What the stalled client's kernel buffers held is a prefix of the log, cut before its end.
  stalled.resume()
  let stalledText = ''
  stalled.setEncoding('utf8')
  stalled.on('data', (chunk: string) => { stalledText += chunk })
  await new Promise(resolve => stalled.once('close', resolve))
  // The response is chunked (HTTP/1.1 without a length): drop the chunk-size lines.
  const body = stalledText.slice(stalledText.indexOf('\r\n\r\n') + 4).replace(/(^|\r\n)[0-9a-f]+\r\n/g, '')
  const stalledIds = splitFrames(body).filter(f => f.id !== undefined).map(f => f.id)
  assert.ok(stalledIds.length < want.ids.length, 'the stalled client never got the end')
  assert.deepEqual(stalledIds, want.ids.slice(0, stalledIds.length))

  const logBytes = frames.reduce((n, f) => n + Buffer.byteLength(f.raw), 0)
  const b = memory.before
  t.diagnostic(`${received.length} clients × ${want.ids.length} events (${mb(logBytes)}) each = ${mb(logBytes * received.length)} delivered; ` +
    `stalled client dropped after the server wrote it ${mb(droppedAfterBytes)} (${stalledIds.length} events); ` +
    `${final.status} ${streamedMs} ms after release`)
  t.diagnostic(`memory of this process (sidecar, model server, test; the 200 clients run in a child): before rss ${mb(b.rss)} heap ${mb(b.heapUsed)}; ` +
    `peak rss ${mb(memory.peakRss)} heap ${mb(memory.peakHeap)}; after rss ${mb(afterAll.rss)} heap ${mb(afterAll.heapUsed)}`)
  // Loose bound: one copy of the log per client would be 200× its size.
  assert.ok(memory.peakHeap - b.heapUsed < Math.max(256 * 1024 * 1024, logBytes * 40),
    `heap grew by ${mb(memory.peakHeap - b.heapUsed)} for a ${mb(logBytes)} log`)
})

test('heartbeats carry no id and arrive while the session is quiet; a read-and-flush proxy passes each event at once', async (t) => {
  handlers['BEAT-MARKER'] = scenario([
    { toolCalls: [{ name: 'bash', args: { command: gate('beat.go'), description: 'wait' } }] },
    { text: 'Beat done.' },
  ])
  // A Go-style proxy (`io.Copy` + flush): writes each upstream chunk downstream as it arrives.
  const upstreamBase = new URL(h.url)
  const proxy = http.createServer((req, res) => {
    const up = http.get({ host: upstreamBase.hostname, port: upstreamBase.port, path: req.url, headers: req.headers, agent: false }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      res.flushHeaders()
      upRes.on('data', (chunk: Buffer) => res.write(chunk))
      upRes.on('end', () => res.end())
      upRes.on('error', () => res.destroy())
    })
    up.on('error', () => res.destroy())
    res.on('close', () => up.destroy())
  })
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    proxy.closeAllConnections()
    await new Promise(resolve => proxy.close(resolve))
  })
  const proxyBase = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`

  const session = await createSession(h, scriptedSession(h, 'BEAT-MARKER: wait'))
  const id = session.session_id
  const frames: Array<Frame & { at: number }> = []
  const stream = openStream(streamUrl(proxyBase, id), frame => frames.push({ ...frame, at: Date.now() }))
  t.after(() => { stream.req.destroy() })
  assert.equal(await stream.status, 200)

  // The tool_call reaches the client through the proxy while the tool still blocks the session,
  // and three heartbeats follow while nothing else happens.
  const toolCallIndex = (): number => frames.findIndex(f => f.event === 'tool_call')
  await until('the tool_call through the proxy', () => toolCallIndex() !== -1)
  const runningWhenSeen = (await getStatus(h, id)).status
  await until('three heartbeats', () => frames.slice(toolCallIndex()).filter(f => f.event === 'heartbeat').length >= 3)
  assert.equal(runningWhenSeen, 'running')
  assert.equal((await getStatus(h, id)).status, 'running')
  release('beat.go')
  const { error } = await stream.done
  assert.equal(error, undefined)

  const heartbeats = frames.filter(f => f.event === 'heartbeat')
  for (const beat of heartbeats) {
    assert.equal(beat.raw, HEARTBEAT_FRAME, 'a heartbeat is `event: heartbeat` + `data: {}` only')
    assert.equal(beat.id, undefined)
  }
  const delivered = frames.filter(f => !f.retry && f.event !== 'heartbeat')
  assert.deepEqual(delivered.map(f => f.raw), (await replayFrames(id)).map(f => f.raw), 'the proxy passed every event byte for byte')
  assert.equal(delivered.at(-1)?.event, 'complete')
  const gaps = heartbeats.slice(1).map((b, i) => b.at - heartbeats[i]!.at)
  t.diagnostic(`${heartbeats.length} heartbeats (HEARTBEAT_INTERVAL=1), gaps ms: ${gaps.join(', ')}`)
})
