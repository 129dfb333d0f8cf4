// The sidecar as `src/server.ts` runs it (same config loading, app, listen, close-with-grace),
// plus an IPC channel telling the benchmark driver its port and its engine's address, so the
// driver can watch the engine's own /event stream and process tree. Bundled by bench/lib/build.ts
// and run with plain `node`, like the built server.
// On request (after the memory measurements, so it is not in them) it also serves a bare Fastify
// hello-world from inside this process: the control plane's attribution between what the process
// costs any request and what the sidecar's request path adds. And on request it records its GC
// pauses (epoch ms), which the latency measurement lines up with its slow events.
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import { PerformanceObserver, performance, type PerformanceEntry } from 'node:perf_hooks'
import { loadConfig } from '../src/config.js'
import { buildApp } from '../src/app.js'
import { helloWorld } from './lib/hello.js'
import type { EngineReadyInfo, EngineSupervisor } from '../src/engine/supervisor.js'

const config = loadConfig()
const app = await buildApp(config)

let inner: FastifyInstance | undefined

closeWithGrace({ delay: config.shutdownGraceMs }, async ({ err }) => {
  if (err) app.log.error({ err }, 'closing after an error')
  await inner?.close()
  await app.close()
})

await app.listen({ port: config.port, host: config.host })
process.send?.({ type: 'listening', port: (app.server.address() as AddressInfo).port })

let innerPort: Promise<number> | undefined
/** [start (epoch ms), duration (ms)] of each GC pause between `watch-gc` and `gc-pauses`. */
let gcPauses: Array<[number, number]> = []
let gcObserver: PerformanceObserver | undefined
const recordGc = (entries: PerformanceEntry[]): void => {
  for (const e of entries) if (gcPauses.length < 100_000) gcPauses.push([performance.timeOrigin + e.startTime, e.duration])
}

process.on('message', (m: { type?: string }) => {
  switch (m.type) {
    case 'watch-gc':
      gcObserver?.disconnect()
      gcPauses = []
      gcObserver = new PerformanceObserver(list => recordGc(list.getEntries()))
      gcObserver.observe({ entryTypes: ['gc'] })
      process.send?.({ type: 'gc-watching' })
      break
    case 'gc-pauses':
      recordGc(gcObserver?.takeRecords() ?? []) // entries not yet delivered to the callback
      gcObserver?.disconnect()
      gcObserver = undefined
      process.send?.({ type: 'gc-pauses', pauses: gcPauses })
      break
    case 'start-inner-hello':
      innerPort ??= (async () => {
        inner = helloWorld() // the baseline of bench/servers.ts, in this process
        await inner.listen({ port: 0, host: '127.0.0.1' })
        return (inner.server.address() as AddressInfo).port
      })()
      innerPort.then(
        port => process.send?.({ type: 'inner-hello', port }),
        (err: Error) => process.send?.({ type: 'inner-hello', error: err.message })
      )
      break
  }
})

// Reached through the manager's private field (the bench only reads from it). The manager creates
// the supervisor in the background after listening, seconds before the engine can be ready.
const manager = app.sessions as unknown as { engine?: EngineSupervisor }
const found = setInterval(() => {
  if (manager.engine === undefined) return
  clearInterval(found)
  watch(manager.engine)
}, 5)
found.unref()

function watch (engine: EngineSupervisor): void {
  engine.on('ready', (info: EngineReadyInfo) => {
    const now = Date.now()
    const authorization = engine.client?.headers().authorization ?? ''
    const password = Buffer.from(authorization.replace(/^Basic /, ''), 'base64').toString('utf8').replace(/^opencode:/, '')
    process.send?.({
      type: 'engine-ready',
      pid: info.pid,
      url: info.url,
      password,
      spawnedAt: now - info.startupMs,
      listeningAt: now - info.startupMs + info.listeningMs,
      readyAt: now,
    })
  })
  engine.on('down', (info) => process.send?.({ type: 'engine-down', reason: info.reason }))
}
