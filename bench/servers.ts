// Baselines and the fan-out host, one per process: `hello` (bare Fastify hello-world; `hello N`:
// the same with an N-byte body), `hello-plugin` (the same with its route in a plugin),
// `bare-sse` (bare Fastify SSE broadcast), `sidecar-sse` (the sidecar's EventLog + StreamRegistry
// behind a Fastify route, as the session stream route uses them).
import Fastify from 'fastify'
import { mkdtempSync, rmSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { EventLog } from '../src/events/event-log.js'
import { SSE_HEADERS } from '../src/events/stream-client.js'
import { StreamRegistry } from '../src/events/stream-registry.js'
import { retryFrame } from '../src/events/types.js'
import { FANOUT_BATCH, fanoutEvent } from './lib/fanout-events.js'
import { helloWorld, helloWorldInPlugin } from './lib/hello.js'

const mode = process.argv[2]
const app = mode === 'hello'
  ? helloWorld(process.argv[3] === undefined ? undefined : Number(process.argv[3]))
  : mode === 'hello-plugin' ? helloWorldInPlugin() : Fastify({ logger: false })
let cleanup = (): void => {}

if (mode === 'bare-sse') {
  const clients = new Set<ServerResponse>()
  app.get('/stream', (_request, reply) => {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, SSE_HEADERS)
    res.socket?.setNoDelay(true)
    res.write(retryFrame(2000))
    clients.add(res)
    res.on('close', () => clients.delete(res))
  })
  app.post<{ Querystring: { n: string } }>('/publish', async (request) => {
    const n = Number(request.query.n)
    for (let i = 1; i <= n; i += FANOUT_BATCH) {
      let chunk = ''
      for (let id = i; id < i + FANOUT_BATCH && id <= n; id++) {
        const { event, data } = fanoutEvent(id, n)
        chunk += `event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`
      }
      for (const res of clients) res.write(chunk)
      await new Promise(resolve => setImmediate(resolve))
    }
    for (const res of clients) res.end()
    return { clients: clients.size }
  })
} else if (mode === 'sidecar-sse') {
  const dir = mkdtempSync(path.join(tmpdir(), 'ocs-bench-fanout-'))
  cleanup = () => rmSync(dir, { recursive: true, force: true })
  // The manager's defaults: 500 clients per session, 15 s heartbeats.
  const registry = new StreamRegistry({ maxClientsPerSession: 500, maxClients: 2000, client: { heartbeatMs: 15_000 } })
  let log: EventLog | undefined
  app.post('/reset', async () => {
    log?.close()
    log = EventLog.open(path.join(dir, `${Date.now()}.ndjson`))
    return {}
  })
  app.get('/stream', async (_request, reply) => {
    if (log === undefined) throw new Error('no log')
    registry.attach('bench', { log, res: reply.raw, afterId: 0 })
    reply.hijack()
  })
  app.post<{ Querystring: { n: string } }>('/publish', async (request) => {
    const n = Number(request.query.n)
    const clients = registry.count('bench')
    for (let i = 1; i <= n; i += FANOUT_BATCH) {
      for (let id = i; id < i + FANOUT_BATCH && id <= n; id++) {
        const { event, data } = fanoutEvent(id, n)
        log!.append(event, data)
      }
      await new Promise(resolve => setImmediate(resolve))
    }
    return { clients, slow: registry.slowClientsDisconnected }
  })
} else if (mode !== 'hello' && mode !== 'hello-plugin') {
  throw new Error(`unknown mode ${mode}`)
}

await app.listen({ port: 0, host: '127.0.0.1' })
process.send?.({ type: 'listening', port: (app.server.address() as AddressInfo).port })
process.on('disconnect', () => {
  cleanup()
  process.exit(0)
})
