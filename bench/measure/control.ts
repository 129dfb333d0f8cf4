import autocannon from 'autocannon'
import { cpuMsOf } from '../lib/proc.js'
import { median } from '../lib/stats.js'

export interface Target { url: string, pid: number }
export type ControlTargets = Record<'hello' | 'hello_twin' | 'hello_sized' | 'hello_plugin' | 'inner_hello' | 'healthz' | 'status' | 'second_inner_hello' | 'second_healthz' | 'second_status', Target>

async function slice (target: Target, durationS: number): Promise<{ rps: number, cpuUsPerRequest: number }> {
  const cpu0 = cpuMsOf(target.pid)
  const result = await autocannon({ url: target.url, connections: 10, pipelining: 1, duration: durationS })
  const cpuMs = cpuMsOf(target.pid) - cpu0
  if (result.errors > 0 || result.non2xx > 0) throw new Error(`${target.url}: ${result.errors} errors, ${result.non2xx} non-2xx`)
  return { rps: result.requests.average, cpuUsPerRequest: (cpuMs * 1000) / Math.max(1, result.requests.total) }
}

/**
 * Requests/s of the sidecar's /healthz and status route vs a bare Fastify hello-world, in many
 * short slices whose order rotates every round. The ratio is taken within each round (the
 * neighbouring hello-world slice) and the median over rounds is reported: this machine's speed
 * drifts by 2x within seconds, which a ratio of whole-run medians does not survive.
 * `hello_twin` is a second, identical hello-world process measured like the sidecar: its ratio
 * is the method's own noise and bias (an A/A test), printed next to the real ratios.
 * `inner_hello` is the same hello-world served from inside the sidecar's process: it splits the
 * gap into what that process costs any request (inner_hello vs hello) and what the sidecar's own
 * request path adds (healthz and status vs inner_hello, same process, same moment).
 * `hello_sized` is the hello-world answering a body the size of the status document: how much of
 * the status route's gap is its answer's size (hello_sized vs hello) rather than its work.
 * `second_*` are the same three in a second sidecar process of the same build (one session run,
 * for its status): how much the ratios depend on the process measured rather than the code.
 * `hello_plugin` is the hello-world with its route registered by a plugin, as Fastify apps are
 * written: a process that has registered any plugin pays for it on every request, and the bare
 * hello-world, which never did, is the best case of a Fastify process (bench/README.md).
 * The server's CPU time per request (from /proc) is reported as a second, steadier view.
 */
export async function measureControlPlane (targets: ControlTargets, rounds: number, durationS: number) {
  const names = Object.keys(targets) as Array<keyof ControlTargets>
  for (const name of names) await slice(targets[name], 1) // warm-up: JIT, connections
  const rps: Record<string, number[]> = {}
  const cpu: Record<string, number[]> = {}
  for (let i = 0; i < rounds; i++) {
    const order = names.map((_, k) => names[(k + i) % names.length])
    for (const name of order) {
      const s = await slice(targets[name], durationS)
      ;(rps[name] ??= []).push(s.rps)
      ;(cpu[name] ??= []).push(s.cpuUsPerRequest)
    }
  }
  const ratio = (name: string, base = 'hello'): number => median(rps[name].map((v, k) => v / rps[base][k]))
  const cpuRatio = (name: string, base = 'hello'): number => median(cpu[base].map((v, k) => v / cpu[name][k]))
  return {
    rounds,
    slice_s: durationS,
    hello_rps_median: Math.round(median(rps.hello)),
    healthz_rps_median: Math.round(median(rps.healthz)),
    status_rps_median: Math.round(median(rps.status)),
    healthz_ratio: ratio('healthz'),
    status_ratio: ratio('status'),
    aa_ratio: ratio('hello_twin'),
    hello_sized_ratio: ratio('hello_sized'),
    status_vs_sized_ratio: ratio('status', 'hello_sized'),
    hello_plugin_ratio: ratio('hello_plugin'),
    healthz_vs_hello_plugin_ratio: ratio('healthz', 'hello_plugin'),
    status_vs_hello_plugin_ratio: ratio('status', 'hello_plugin'),
    inner_hello_ratio: ratio('inner_hello'),
    healthz_vs_inner_ratio: ratio('healthz', 'inner_hello'),
    status_vs_inner_ratio: ratio('status', 'inner_hello'),
    second_healthz_ratio: ratio('second_healthz'),
    second_status_ratio: ratio('second_status'),
    second_inner_hello_ratio: ratio('second_inner_hello'),
    // hello-world's CPU per request / the target's (same direction as the rps ratios).
    cpu_healthz_ratio: cpuRatio('healthz'),
    cpu_status_ratio: cpuRatio('status'),
    cpu_aa_ratio: cpuRatio('hello_twin'),
    cpu_hello_sized_ratio: cpuRatio('hello_sized'),
    cpu_status_vs_sized_ratio: cpuRatio('status', 'hello_sized'),
    cpu_hello_plugin_ratio: cpuRatio('hello_plugin'),
    cpu_healthz_vs_hello_plugin_ratio: cpuRatio('healthz', 'hello_plugin'),
    cpu_status_vs_hello_plugin_ratio: cpuRatio('status', 'hello_plugin'),
    cpu_inner_hello_ratio: cpuRatio('inner_hello'),
    cpu_healthz_vs_inner_ratio: cpuRatio('healthz', 'inner_hello'),
    cpu_status_vs_inner_ratio: cpuRatio('status', 'inner_hello'),
    cpu_second_healthz_ratio: cpuRatio('second_healthz'),
    cpu_second_status_ratio: cpuRatio('second_status'),
    cpu_second_inner_hello_ratio: cpuRatio('second_inner_hello'),
    cpu_us_per_request_median: Object.fromEntries(names.map(n => [n, Math.round(median(cpu[n]) * 10) / 10])),
    rps,
  }
}
