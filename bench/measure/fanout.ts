import http from 'node:http'
import type { Server } from '../lib/children.js'
import { median } from '../lib/stats.js'

interface Counter { count: number, lastId: number, inOrder: boolean, done: Promise<void>, opened: Promise<void> }

/** A lean SSE consumer: counts frames with an id and checks they arrive 1, 2, 3, … */
function countingClient (url: string): Counter {
  const counter = { count: 0, lastId: 0, inOrder: true } as Counter
  let opened!: () => void
  counter.opened = new Promise(resolve => { opened = resolve })
  counter.done = new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream' }, agent: false }, (res) => {
      res.setEncoding('utf8')
      let rest = ''
      res.on('data', (chunk: string) => {
        if (counter.count === 0 && rest === '') opened()
        const text = rest + chunk
        const end = text.lastIndexOf('\n\n')
        if (end === -1) { rest = text; return }
        rest = text.slice(end + 2)
        let i = text.indexOf('\nid: ')
        while (i !== -1 && i < end) {
          const eol = text.indexOf('\n', i + 5)
          const id = Number(text.slice(i + 5, eol))
          if (id !== counter.lastId + 1) counter.inOrder = false
          counter.lastId = id
          counter.count++
          i = text.indexOf('\nid: ', eol)
        }
      })
      res.on('end', () => resolve())
      res.on('error', reject)
    })
    req.on('error', reject)
  })
  return counter
}

export interface FanoutRun { elapsed_ms: number, events_per_s: number, all_delivered: boolean, in_order: boolean, slow_disconnects: number }

/** 200 clients connect, then the server publishes `events` events; timed until every stream ends. */
export async function fanoutRun (server: Server, sidecar: boolean, clients: number, events: number): Promise<FanoutRun> {
  if (sidecar) await (await fetch(`${server.url}/reset`, { method: 'POST' })).arrayBuffer()
  const counters = Array.from({ length: clients }, () => countingClient(`${server.url}/stream`))
  await Promise.all(counters.map(c => c.opened))
  const t0 = performance.now()
  const publish = await fetch(`${server.url}/publish?n=${events}`, { method: 'POST' })
  const body = await publish.json() as { clients: number, slow?: number }
  await Promise.all(counters.map(c => c.done))
  const elapsed = performance.now() - t0
  return {
    elapsed_ms: elapsed,
    events_per_s: (clients * events) / (elapsed / 1000),
    all_delivered: body.clients === clients && counters.every(c => c.count === events),
    in_order: counters.every(c => c.inOrder),
    slow_disconnects: body.slow ?? 0,
  }
}

export async function measureFanout (sidecarServer: Server, bareServer: Server, rounds: number, clients = 200, events = 10_000) {
  const sidecarRuns: FanoutRun[] = []
  const bareRuns: FanoutRun[] = []
  await fanoutRun(sidecarServer, true, clients, 1000)
  await fanoutRun(bareServer, false, clients, 1000)
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      sidecarRuns.push(await fanoutRun(sidecarServer, true, clients, events))
      bareRuns.push(await fanoutRun(bareServer, false, clients, events))
    } else {
      bareRuns.push(await fanoutRun(bareServer, false, clients, events))
      sidecarRuns.push(await fanoutRun(sidecarServer, true, clients, events))
    }
  }
  const sidecarRate = median(sidecarRuns.map(r => r.events_per_s))
  const bareRate = median(bareRuns.map(r => r.events_per_s))
  return {
    clients,
    events,
    all_delivered_in_order: sidecarRuns.every(r => r.all_delivered && r.in_order),
    bare_all_delivered_in_order: bareRuns.every(r => r.all_delivered && r.in_order),
    sidecar_events_per_s_median: Math.round(sidecarRate),
    bare_events_per_s_median: Math.round(bareRate),
    fanout_ratio: sidecarRate / bareRate,
    sidecar_runs: sidecarRuns,
    bare_runs: bareRuns,
  }
}
