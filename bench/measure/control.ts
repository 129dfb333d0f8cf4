import autocannon from 'autocannon'
import { median } from '../lib/stats.js'

async function rps (url: string, durationS: number): Promise<number> {
  const result = await autocannon({ url, connections: 10, pipelining: 1, duration: durationS })
  if (result.errors > 0 || result.non2xx > 0) throw new Error(`${url}: ${result.errors} errors, ${result.non2xx} non-2xx`)
  return result.requests.average
}

/** Requests/s of the sidecar's probes and status route vs a bare Fastify hello-world, alternating. */
export async function measureControlPlane (targets: { healthz: string, status: string, hello: string }, rounds: number, durationS: number) {
  const runs: Record<'healthz' | 'status' | 'hello', number[]> = { healthz: [], status: [], hello: [] }
  await rps(targets.hello, 1)
  await rps(targets.healthz, 1)
  await rps(targets.status, 1)
  for (let i = 0; i < rounds; i++) {
    const order: Array<keyof typeof runs> = i % 2 === 0 ? ['hello', 'healthz', 'status'] : ['status', 'healthz', 'hello']
    for (const name of order) runs[name].push(await rps(targets[name], durationS))
  }
  const hello = median(runs.hello)
  return {
    hello_rps_median: Math.round(hello),
    healthz_rps_median: Math.round(median(runs.healthz)),
    status_rps_median: Math.round(median(runs.status)),
    healthz_ratio: median(runs.healthz) / hello,
    status_ratio: median(runs.status) / hello,
    runs,
  }
}
