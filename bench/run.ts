// `npm run bench`: the sidecar's cost over the bare engine, side by side in one run (see README.md).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { resolveOpencodeBin } from '../src/engine/binary.js'
import { EngineSupervisor, type EngineLogger } from '../src/engine/supervisor.js'
import { startModelServer } from '../test/support/model-server.js'
import { BENCH_DIR, BUILD_DIR, bundle } from './lib/build.js'
import { running, spawnSidecar, startServer } from './lib/children.js'
import { MB, machine, reniceThreads, rssOf } from './lib/proc.js'
import { modelHandler } from './lib/scripts.js'
import { serverNodeFlags } from './lib/node-flags.js'
import { median, round, sleep } from './lib/stats.js'
import { measureControlPlane } from './measure/control.js'
import { measureFanout } from './measure/fanout.js'
import {
  measureCancel, measureLatency, measureLoadedMemory, measureOverhead, memorySample, runViaSidecar, watchEngine, type SessionContext,
} from './measure/sessions.js'
import { startMeasured, summarizeStartup, type StartupRun } from './measure/startup.js'

const STARTUP_RUNS = 3
const OVERHEAD_RUNS = 20
const LATENCY_RUNS = 6
const CANCEL_RUNS = 3
const CONTROL_ROUNDS = 12
const CONTROL_SECONDS = 1
const FANOUT_ROUNDS = 4
const PROFILE = process.env.BENCH_CPU_PROF === '1'
// An experiment, not the default: the kept sidecar's threads reniced (its engine keeps nice 0), to
// see how much of the session overhead is the sidecar's CPU competing with the engine's.
const SIDECAR_NICE = Number(process.env.BENCH_SIDECAR_NICE ?? 0)
if (!Number.isInteger(SIDECAR_NICE) || SIDECAR_NICE < 0 || SIDECAR_NICE > 19) {
  process.stderr.write(`BENCH_SIDECAR_NICE must be an integer from 0 to 19, got ${JSON.stringify(process.env.BENCH_SIDECAR_NICE)}\n`)
  process.exit(2)
}

const began = Date.now()
const log = (msg: string): void => { process.stderr.write(`[bench ${((Date.now() - began) / 1000).toFixed(1)}s] ${msg}\n`) }
const silent: EngineLogger = { debug () {}, info () {}, warn () {}, error () {} }

const cleanups: Array<() => Promise<void> | void> = []
async function cleanUp (): Promise<void> {
  for (const cleanup of cleanups.splice(0)) {
    try { await cleanup() } catch (err) { log(`cleanup: ${(err as Error).message}`) }
  }
}

// Never hang: a stuck step ends the run (its processes stopped) after the last logged step.
const WATCHDOG_MS = 280_000
setTimeout(() => {
  log(`watchdog: the bench did not finish within ${WATCHDOG_MS / 1000} s`)
  for (const child of running) child.kill('SIGTERM')
  Promise.race([cleanUp(), sleep(15_000)]).finally(() => process.exit(2))
}, WATCHDOG_MS).unref()

const scripts = await bundle()
const model = await startModelServer()
model.setHandler(modelHandler)
cleanups.push(() => model.close())

try {
  // ---- start-up: fresh sidecar processes; the last one stays up for everything else ----
  const startupRuns: StartupRun[] = []
  let kept: Awaited<ReturnType<typeof startMeasured>> | undefined
  for (let i = 0; i < STARTUP_RUNS; i++) {
    const last = i === STARTUP_RUNS - 1
    const profDir = path.join(BUILD_DIR, 'prof')
    if (PROFILE && last) mkdirSync(profDir, { recursive: true })
    const started = await startMeasured(scripts.sidecar, [...serverNodeFlags(), ...(PROFILE && last ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [])])
    startupRuns.push(started.run)
    log(`start-up ${i + 1}: ${JSON.stringify(started.run)}`)
    if (last) kept = started
    else await started.sidecar.stop()
  }
  const { sidecar, url } = kept!
  cleanups.unshift(() => sidecar.stop())
  const engine = await sidecar.engine
  if (SIDECAR_NICE > 0) reniceThreads(sidecar.pid, SIDECAR_NICE)

  // ---- idle memory ----
  await sleep(2000)
  const idleSamples = Array.from({ length: 5 }, () => memorySample({ sidecar, engine } as SessionContext))
  const idle = {
    sidecar: median(idleSamples.map(s => s.sidecar)) / MB,
    sidecar_anon: median(idleSamples.map(s => s.sidecarAnon)) / MB,
    sidecar_file: median(idleSamples.map(s => s.sidecarFile)) / MB,
    engine: median(idleSamples.map(s => s.engine)) / MB,
  }
  log(`idle memory: ${JSON.stringify(idle)}`)

  // ---- engine B, driven directly, with its provider pointing straight at the model server ----
  const directRoot = mkdtempSync(path.join(tmpdir(), 'ocs-bench-direct-'))
  cleanups.push(() => rmSync(directRoot, { recursive: true, force: true }))
  mkdirSync(path.join(directRoot, 'workspace'))
  writeFileSync(path.join(directRoot, 'workspace', 'README.md'), '# bench workspace\n')
  const direct = new EngineSupervisor({
    bin: resolveOpencodeBin({}),
    workspaceDir: path.join(directRoot, 'workspace'),
    stateDir: directRoot,
    logger: silent,
    configContent: JSON.stringify({
      $schema: 'https://opencode.ai/config.json',
      share: 'disabled',
      autoupdate: false,
      enabled_providers: ['bench'],
      provider: {
        bench: {
          npm: '@ai-sdk/openai-compatible',
          name: 'Bench',
          options: { baseURL: `${model.url}/v1`, apiKey: 'sk-bench-direct' },
          models: { 'scripted-model': { name: 'scripted', tool_call: true, temperature: true, reasoning: false, attachment: false, limit: { context: 200_000, output: 32_000 } } },
        },
      },
    }),
  })
  direct.start()
  cleanups.splice(1, 0, () => direct.stop())
  await direct.waitReady(90_000)
  log('direct engine ready')

  const ctx: SessionContext = { sidecar, url, engine, modelUrl: model.url, model, direct, directProvider: 'bench' }
  const overhead = await measureOverhead(ctx, OVERHEAD_RUNS)
  log(`overhead: a=${overhead.via_sidecar_ms.join(',')} b=${overhead.direct_ms.join(',')} ratio=${overhead.session_overhead_ratio.toFixed(3)}`)
  const watch = await watchEngine(ctx)
  cleanups.unshift(() => watch.stream.stop())
  const latency = await measureLatency(ctx, LATENCY_RUNS, watch.setTracker)
  log(`latency: ${JSON.stringify(latency)}`)
  const cancel = await measureCancel(ctx, CANCEL_RUNS)
  log(`cancel: ${JSON.stringify(cancel)}`)
  const loaded = await measureLoadedMemory(ctx, 5, 100)
  log(`loaded memory: ${JSON.stringify(loaded)}`)
  await direct.stop()

  // ---- control plane ----
  const hello = await startServer(scripts.servers, 'hello')
  const helloTwin = await startServer(scripts.servers, 'hello')
  const statusUrl = `${url}/sessions/${overhead.sessionId}/status`
  const statusBytes = (await (await fetch(statusUrl)).arrayBuffer()).byteLength
  const helloSized = await startServer(scripts.servers, 'hello', String(statusBytes))
  const helloPlugin = await startServer(scripts.servers, 'hello-plugin')
  cleanups.push(() => hello.stop(), () => helloTwin.stop(), () => helloSized.stop(), () => helloPlugin.stop())
  // What any node + Fastify process costs, for scale.
  const helloRss = rssOf(hello.child.pid!) / MB
  // A second sidecar process of the same build, with one session of its own for the status route.
  const second = spawnSidecar(scripts.sidecar, { execArgv: serverNodeFlags() })
  cleanups.unshift(() => second.stop())
  const secondUrl = await second.url
  const secondRun = await runViaSidecar({ ...ctx, sidecar: second, url: secondUrl, engine: await second.engine }, 'BENCH-OVERHEAD')
  const control = await measureControlPlane({
    hello: { url: `${hello.url}/`, pid: hello.child.pid! },
    hello_twin: { url: `${helloTwin.url}/`, pid: helloTwin.child.pid! },
    hello_sized: { url: `${helloSized.url}/`, pid: helloSized.child.pid! },
    hello_plugin: { url: `${helloPlugin.url}/`, pid: helloPlugin.child.pid! },
    inner_hello: { url: await sidecar.innerHello(), pid: sidecar.pid },
    healthz: { url: `${url}/healthz`, pid: sidecar.pid },
    status: { url: statusUrl, pid: sidecar.pid },
    second_inner_hello: { url: await second.innerHello(), pid: second.pid },
    second_healthz: { url: `${secondUrl}/healthz`, pid: second.pid },
    second_status: { url: `${secondUrl}/sessions/${secondRun.id}/status`, pid: second.pid },
  }, CONTROL_ROUNDS, CONTROL_SECONDS)
  log(`control plane: ${JSON.stringify({ ...control, rps: undefined })}`)
  await hello.stop()
  await helloTwin.stop()
  await helloSized.stop()
  await helloPlugin.stop()
  await second.stop()

  // ---- fan-out ----
  const sidecarSse = await startServer(scripts.servers, 'sidecar-sse')
  const bareSse = await startServer(scripts.servers, 'bare-sse')
  cleanups.push(() => sidecarSse.stop(), () => bareSse.stop())
  const fanout = await measureFanout(sidecarSse, bareSse, FANOUT_ROUNDS)
  log(`fan-out: ratio=${fanout.fanout_ratio.toFixed(3)} sidecar=${fanout.sidecar_events_per_s_median} bare=${fanout.bare_events_per_s_median}`)

  const startup = summarizeStartup(startupRuns)
  const results = {
    machine: machine(),
    duration_s: 0,
    sidecar_nice: SIDECAR_NICE,
    session_overhead_ratio: round(overhead.session_overhead_ratio),
    latency_p50_ms: round(latency.p50_ms as number),
    latency_p99_ms: round(latency.p99_ms as number),
    latency_isolated_p99_ms: round((latency.isolated as { p99_ms: number }).p99_ms),
    fanout_ratio: round(fanout.fanout_ratio),
    control_plane_healthz_ratio: round(control.healthz_ratio),
    control_plane_status_ratio: round(control.status_ratio),
    control_plane_aa_ratio: round(control.aa_ratio),
    control_plane_cpu_ratio: { healthz: round(control.cpu_healthz_ratio), status: round(control.cpu_status_ratio), aa: round(control.cpu_aa_ratio) },
    // Attribution: a bare hello-world inside the sidecar's process vs in its own; the sidecar's
    // routes vs that in-process hello-world (see bench/README.md).
    control_plane_attribution: {
      status_body_bytes: statusBytes,
      hello_with_status_sized_body_ratio: round(control.hello_sized_ratio),
      status_vs_hello_with_status_sized_body: round(control.status_vs_sized_ratio),
      // The hello-world with its route in a plugin, as Fastify apps are written (bench/README.md).
      hello_in_plugin_ratio: round(control.hello_plugin_ratio),
      healthz_vs_hello_in_plugin: round(control.healthz_vs_hello_plugin_ratio),
      status_vs_hello_in_plugin: round(control.status_vs_hello_plugin_ratio),
      in_process_hello_ratio: round(control.inner_hello_ratio),
      healthz_vs_in_process_hello: round(control.healthz_vs_inner_ratio),
      status_vs_in_process_hello: round(control.status_vs_inner_ratio),
      // The same build in a second sidecar process, in the same rounds (see bench/README.md).
      second_process: {
        healthz_ratio: round(control.second_healthz_ratio),
        status_ratio: round(control.second_status_ratio),
        in_process_hello_ratio: round(control.second_inner_hello_ratio),
        cpu: { healthz_ratio: round(control.cpu_second_healthz_ratio), status_ratio: round(control.cpu_second_status_ratio), in_process_hello_ratio: round(control.cpu_second_inner_hello_ratio) },
      },
      cpu: {
        hello_with_status_sized_body_ratio: round(control.cpu_hello_sized_ratio),
        status_vs_hello_with_status_sized_body: round(control.cpu_status_vs_sized_ratio),
        hello_in_plugin_ratio: round(control.cpu_hello_plugin_ratio),
        healthz_vs_hello_in_plugin: round(control.cpu_healthz_vs_hello_plugin_ratio),
        status_vs_hello_in_plugin: round(control.cpu_status_vs_hello_plugin_ratio),
        in_process_hello_ratio: round(control.cpu_inner_hello_ratio),
        healthz_vs_in_process_hello: round(control.cpu_healthz_vs_inner_ratio),
        status_vs_in_process_hello: round(control.cpu_status_vs_inner_ratio),
      },
    },
    rss_mb: {
      idle_sidecar: round(idle.sidecar, 1),
      idle_sidecar_anon: round(idle.sidecar_anon, 1),
      idle_sidecar_file: round(idle.sidecar_file, 1),
      bare_fastify_hello: round(helloRss, 1),
      idle_engine: round(idle.engine, 1),
      loaded_sidecar_peak: round(loaded.sidecar_peak_mb, 1),
      loaded_engine_peak: round(loaded.engine_peak_mb, 1),
      loaded_total_peak: round(loaded.total_peak_mb, 1),
    },
    startup_ms: startup,
    cancel_ms: { terminal_event_median: round(cancel.terminal_event_ms_median, 1), tool_tree_gone_median: round(cancel.tool_tree_gone_ms_median, 1) },
    details: { overhead, latency, cancel, loaded, control, fanout, startup_runs: startupRuns },
    targets: {} as Record<string, { value: number | boolean, target: string, met: boolean }>,
  }
  const t = results.targets
  t.session_overhead_ratio = { value: results.session_overhead_ratio, target: '<= 1.05', met: overhead.session_overhead_ratio <= 1.05 }
  t.latency_p50_ms = { value: results.latency_p50_ms, target: '<= 1', met: (latency.p50_ms as number) <= 1 }
  t.latency_p99_ms = { value: results.latency_p99_ms, target: '<= 5', met: (latency.p99_ms as number) <= 5 }
  t.fanout_all_delivered_in_order = { value: fanout.all_delivered_in_order, target: 'true', met: fanout.all_delivered_in_order }
  t.fanout_ratio = { value: results.fanout_ratio, target: '>= 0.8', met: fanout.fanout_ratio >= 0.8 }
  t.control_plane_healthz_ratio = { value: results.control_plane_healthz_ratio, target: '>= 0.85', met: control.healthz_ratio >= 0.85 }
  t.control_plane_status_ratio = { value: results.control_plane_status_ratio, target: '>= 0.85', met: control.status_ratio >= 0.85 }
  const sidecarPeak = Math.max(idle.sidecar, loaded.sidecar_peak_mb)
  t.sidecar_rss_mb = { value: round(sidecarPeak, 1), target: '<= 100', met: sidecarPeak <= 100 }
  const totalPeak = Math.max(idle.sidecar + idle.engine, loaded.total_peak_mb)
  t.sidecar_plus_engine_rss_mb = { value: round(totalPeak, 1), target: '<= 1024', met: totalPeak <= 1024 }
  t.startup_healthz_ms = { value: startup.healthz_ms_median, target: '<= 1000', met: startup.healthz_ms_median <= 1000 }
  t.startup_ready_after_engine_ms = { value: startup.ready_after_engine_listening_ms_median, target: '<= 2000', met: startup.ready_after_engine_listening_ms_median <= 2000 }
  t.cancel_terminal_event_ms = { value: results.cancel_ms.terminal_event_median, target: '<= 1000', met: cancel.terminal_event_ms_median <= 1000 }
  t.cancel_tool_tree_gone_ms = { value: results.cancel_ms.tool_tree_gone_median, target: '<= 1000', met: cancel.tool_tree_gone_ms_median <= 1000 }

  results.duration_s = Math.round((Date.now() - began) / 1000)
  writeFileSync(path.join(BENCH_DIR, 'results.json'), JSON.stringify(results, null, 2) + '\n')
  console.log(`\nopencode-server bench — ${results.machine.cpu_model as string}, ${results.machine.cores as number} cores, node ${process.version}, ${results.duration_s} s` +
    `${SIDECAR_NICE > 0 ? ` — sidecar reniced to ${SIDECAR_NICE} (BENCH_SIDECAR_NICE)` : ''}\n`)
  console.table(Object.fromEntries(Object.entries(t).map(([name, r]) => [name, { value: r.value, target: r.target, met: r.met ? 'yes' : 'NO' }])))
  console.log(`extra: idle RSS sidecar ${results.rss_mb.idle_sidecar} MB, engine ${results.rss_mb.idle_engine} MB; loaded peak sidecar ${results.rss_mb.loaded_sidecar_peak} MB, engine ${results.rss_mb.loaded_engine_peak} MB; ` +
    `start-up healthz ${startup.healthz_ms_median} ms, ready ${startup.ready_ms_median} ms, engine listening ${startup.engine_listening_ms_median} ms after spawn; ` +
    `session a=${overhead.via_sidecar_ms_median} ms b=${overhead.direct_ms_median} ms, CPU per session: sidecar ${overhead.cpu_ms_per_session.via_sidecar.sidecar} ms, ` +
    `engine ${overhead.cpu_ms_per_session.via_sidecar.engine} ms via the sidecar and ${overhead.cpu_ms_per_session.direct.engine} ms direct; ` +
    `control plane A/A (hello-world vs its twin) ${results.control_plane_aa_ratio}, CPU-per-request ratios healthz ${results.control_plane_cpu_ratio.healthz} status ${results.control_plane_cpu_ratio.status} A/A ${results.control_plane_cpu_ratio.aa}; ` +
    `hello-world inside the sidecar's process vs its own ${results.control_plane_attribution.in_process_hello_ratio}, healthz vs that ${results.control_plane_attribution.healthz_vs_in_process_hello}, status vs that ${results.control_plane_attribution.status_vs_in_process_hello}; ` +
    `a second sidecar process: healthz ${results.control_plane_attribution.second_process.healthz_ratio}, status ${results.control_plane_attribution.second_process.status_ratio}, hello-world inside it ${results.control_plane_attribution.second_process.in_process_hello_ratio}; ` +
    `hello-world with a ${statusBytes}-byte body (the status document's size) vs hello-world ${results.control_plane_attribution.hello_with_status_sized_body_ratio}, status vs that ${results.control_plane_attribution.status_vs_hello_with_status_sized_body}; ` +
    `hello-world with its route in a plugin vs hello-world ${results.control_plane_attribution.hello_in_plugin_ratio}, healthz vs that ${results.control_plane_attribution.healthz_vs_hello_in_plugin}, status vs that ${results.control_plane_attribution.status_vs_hello_in_plugin}`)
  console.log('written: bench/results.json')
} finally {
  await cleanUp()
}
