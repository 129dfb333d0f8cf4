// Durability of the stream across a SIGKILL of the sidecar (issue 4): the real server entry point
// (`node --import tsx src/server.ts`) as a child process, the real engine, a scripted model.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { descendants, isAlive, readProc, type ProcInfo } from '../src/engine/process-tree.js'
import { tempDirs } from './support/config.js'
import {
  createSession, getStatus, scriptedSession, sleep, waitReady, waitStatus, type Harness,
} from './support/harness.js'
import { byMarker, scenario, startModelServer } from './support/model-server.js'
import { openStream, splitFrames, type Frame } from './support/sse-frames.js'
import { freePort } from '../src/engine/supervisor.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

function cmdline (pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()
  } catch {
    return ''
  }
}

async function until (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** The whole body of a stream (ended sessions replay and close). */
async function rawStream (url: string, id: string): Promise<string> {
  const res = await fetch(`${url}/sessions/${id}/stream`, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.timeout(60_000) })
  assert.equal(res.status, 200)
  return await res.text()
}

test('SIGKILL of the sidecar: the completed session replays byte for byte, the running one ends failed/interrupted, no engine process is left', async (t) => {
  const dirs = tempDirs()
  const model = await startModelServer()
  model.setHandler(byMarker({
    'DONE-MARKER': scenario([
      { toolCalls: [{ name: 'bash', args: { command: 'echo durable > kept.txt; seq 1 3', description: 'write' } }] },
      { text: 'Wrote kept.txt — ünïcødé ✓' },
    ]),
    'SLEEP-MARKER': scenario([
      { toolCalls: [{ name: 'bash', args: { command: 'echo started; sleep 300', description: 'sleep' } }] },
      { text: 'never reached' },
    ]),
  }, () => ({ text: 'ok' })))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const h = { url, model, headers: {} } as Partial<Harness> as Harness
  const logFile = path.join(dirs.root, 'sidecar.log')
  const sidecars: ChildProcess[] = []
  let engineTree: ProcInfo[] = []

  const start = (): ChildProcess => {
    const out = fs.openSync(logFile, 'a')
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: ROOT,
      stdio: ['ignore', out, out],
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? dirs.root,
        WORKSPACE_DIR: dirs.workspaceDir,
        STATE_DIR: dirs.stateDir,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        // No heartbeat within the test, so whole stream bodies can be compared byte for byte.
        HEARTBEAT_INTERVAL: '300',
        SHUTDOWN_GRACE: '10',
      },
    })
    fs.closeSync(out)
    sidecars.push(child)
    return child
  }
  const exited = (child: ChildProcess): Promise<void> => child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise(resolve => child.once('exit', () => resolve()))

  t.after(async () => {
    for (const child of sidecars) child.kill('SIGTERM')
    await Promise.race([Promise.all(sidecars.map(exited)), new Promise(resolve => setTimeout(resolve, 15_000).unref())])
    for (const child of sidecars) child.kill('SIGKILL')
    for (const proc of engineTree) if (isAlive(proc)) process.kill(proc.pid, 'SIGKILL')
    await model.close()
    if (process.exitCode !== undefined && process.exitCode !== 0) process.stderr.write(fs.readFileSync(logFile, 'utf8').slice(-4000))
    dirs.cleanup()
  })

  // ---- first life ----
  const first = start()
  await waitReady(url, 90_000)

  const done = await createSession(h, scriptedSession(h, 'DONE-MARKER: write a file'))
  await waitStatus(h, done.session_id, s => s.status === 'completed')
  const doneBody = await rawStream(url, done.session_id)
  const doneStatus = await getStatus(h, done.session_id)
  assert.equal(splitFrames(doneBody).at(-1)?.event, 'complete')

  const running = await createSession(h, scriptedSession(h, 'SLEEP-MARKER: sleep'))
  const seen: Frame[] = []
  const live = openStream(`${url}/sessions/${running.session_id}/stream`, frame => seen.push(frame))
  live.done.catch(() => {})
  // Mid-session: the tool is running (its `sleep 300` exists) and the client has every event so far.
  const sleepProcess = (): ProcInfo | undefined => descendants(first.pid!).find(p => cmdline(p.pid) === 'sleep 300')
  await until('the sleep 300 tool', () => sleepProcess() !== undefined)
  const before = await getStatus(h, running.session_id)
  assert.equal(before.status, 'running')
  await until('the client to have every event', () => seen.some(f => f.id === before.last_event_id))

  // The engine (own process group) and everything under it.
  const engine = descendants(first.pid!).find(p => / serve /.test(cmdline(p.pid)))
  assert.ok(engine, 'the engine runs under the sidecar')
  engineTree = [engine, ...descendants(engine.pid)]
  t.diagnostic(`engine tree before the kill: ${engineTree.map(p => `${p.pid} ${cmdline(p.pid).slice(0, 60)}`).join(' | ')}`)

  first.kill('SIGKILL')
  await exited(first)
  await live.done
  const survivors = engineTree.filter(isAlive)
  t.diagnostic(`right after SIGKILL of the sidecar, ${survivors.length} of ${engineTree.length} engine processes are still alive (pids ${survivors.map(p => p.pid).join(', ')})`)

  // ---- second life, same STATE_DIR ----
  start()
  await waitReady(url, 90_000)

  // Nothing of the killed sidecar's engine survives the restart (start-up kills what its marker finds).
  await until('the old engine tree to be gone', () => engineTree.every(p => !isAlive(p)), 15_000)
    .catch(() => assert.fail(`left running after the restart: ${engineTree.filter(isAlive).map(p => `${p.pid} ${cmdline(p.pid)} (pgid ${readProc(p.pid)?.pgid})`).join(' | ')}`))

  // The completed session: same status, same stream, byte for byte.
  assert.deepEqual(await getStatus(h, done.session_id), doneStatus)
  assert.equal(await rawStream(url, done.session_id), doneBody)

  // The interrupted one: failed/interrupted, everything the client saw, then one terminal event.
  const after = await getStatus(h, running.session_id)
  assert.equal(after.status, 'failed')
  assert.equal(after.error?.code, 'interrupted')
  const replayed = splitFrames(await rawStream(url, running.session_id)).filter(f => !f.retry)
  assert.equal(after.last_event_id, replayed.length)
  assert.ok(after.last_event_id > before.last_event_id)
  // Events stored after the status snapshot but before the kill may have reached the client or not.
  const seenEvents = seen.filter(f => !f.retry && f.event !== 'heartbeat')
  assert.ok(seenEvents.length >= before.last_event_id)
  assert.deepEqual(replayed.slice(0, seenEvents.length).map(f => f.raw), seenEvents.map(f => f.raw), 'every event the client saw replays unchanged')
  assert.deepEqual(replayed.map(f => f.id), replayed.map((_, i) => i + 1), 'ids continue with no gap')
  const terminal = replayed.at(-1)!
  assert.equal(terminal.event, 'error')
  assert.equal(terminal.id, replayed.length)
  const data = JSON.parse(terminal.data!) as Record<string, unknown>
  assert.equal(data.code, 'interrupted')
  assert.equal(data.fatal, true)
  assert.equal(typeof data.error, 'string')

  t.diagnostic(`completed session: ${splitFrames(doneBody).length - 1} events, ${Buffer.byteLength(doneBody)} bytes identical after the restart; ` +
    `interrupted session: ${before.last_event_id} events + terminal error id ${terminal.id}`)
})
