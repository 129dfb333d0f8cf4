import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { scenario, startModelServer } from './support/model-server.js'
import { tempDirs } from './support/config.js'
import {
  createSession, getStatus, readStream, scriptedSession, sleep, startHarness, waitReady, type Harness,
} from './support/harness.js'
import { freePort } from '../src/engine/supervisor.js'
import { alive, processesWith } from './support/processes.js'

/** The engine child of `parent`. */
function enginePid (parent = process.pid): number {
  return Number(execFileSync('pgrep', ['-P', String(parent), '-f', 'opencode'], { encoding: 'utf8' }).trim().split('\n')[0])
}

async function until (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

describe('engine failures', () => {
  let h: Harness
  before(async () => { h = await startHarness({}) })
  after(async () => { await h?.close() })

  for (const [name, sig] of [['crash (SIGKILL)', 'SIGKILL'], ['hang (SIGSTOP)', 'SIGSTOP']] as const) {
    test(`an engine ${name} fails the running session, /ready is 503 until it is back, the next session works`, async () => {
      const marker = `sleep 62.${sig === 'SIGKILL' ? 1 : 2}${process.pid}`
      h.model.setHandler(scenario([{ toolCalls: [{ name: 'bash', args: { command: marker, description: 'long' } }] }, { text: 'never' }]))
      const body = scriptedSession(h, `engine ${name}`)
      await createSession(h, body)
      const streamed = readStream(h, body.session_id)
      await until('the tool process', () => processesWith(marker).length > 0)
      const pid = enginePid()
      process.kill(pid, sig)
      const events = await streamed
      const terminal = events.at(-1)!
      assert.equal(terminal.event, 'error')
      assert.equal(terminal.data.code, 'engine_crashed')
      assert.equal(terminal.data.fatal, true)
      assert.equal((await getStatus(h, body.session_id)).status, 'failed')
      const ready = await fetch(`${h.url}/ready`)
      if (ready.status === 503) assert.match((await ready.json()).error, /engine/)
      await waitReady(h.url, 90_000)
      assert.notEqual(enginePid(), pid, 'a new engine process')
      assert.equal(alive(pid), false, 'the old engine is gone')
      await until('the old tool process to be gone', () => processesWith(marker).length === 0, 15_000)

      h.model.setHandler(scenario([{ text: 'back in business' }]))
      const next = scriptedSession(h, 'after the restart')
      await createSession(h, next)
      const after = await readStream(h, next.session_id)
      assert.equal(after.at(-1)!.event, 'complete')
      assert.equal(after.at(-1)!.data.final_message, 'back in business')
    })
  }
})

describe('the file system fails under a running sidecar', () => {
  let h: Harness
  before(async () => { h = await startHarness({}) })
  after(async () => { await h?.close() })

  test('state dir or workspace deleted at run time: /ready says which, new sessions get 503, nothing crashes; back when restored', async () => {
    const { renameSync } = await import('node:fs')
    for (const [dir, label] of [[h.dirs.stateDir, 'state'], [h.dirs.workspaceDir, 'workspace']] as const) {
      renameSync(dir, `${dir}.away`)
      try {
        const ready = await fetch(`${h.url}/ready`)
        assert.equal(ready.status, 503)
        assert.match((await ready.json()).error, new RegExp(`^${label} directory does not exist`))
        const res = await fetch(`${h.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(scriptedSession(h, 'no disk')) })
        assert.equal(res.status, 503)
        assert.match(String(res.headers.get('retry-after')), /^\d+$/)
        assert.match((await res.json()).error, new RegExp(label))
        assert.equal((await fetch(`${h.url}/healthz`)).status, 200)
      } finally {
        renameSync(`${dir}.away`, dir)
      }
      await waitReady(h.url, 30_000)
    }
    h.model.setHandler(scenario([{ text: 'fine again' }]))
    const body = scriptedSession(h, 'after restore')
    await createSession(h, body)
    assert.equal((await readStream(h, body.session_id)).at(-1)!.event, 'complete')
  })
})

describe('SIGTERM', () => {
  test('readiness drops, the running session ends with a shutdown terminal event, nothing survives, exit in time', async () => {
    const dirs = tempDirs()
    const model = await startModelServer()
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const marker = `sleep 63.${process.pid}`
    model.setHandler(scenario([{ toolCalls: [{ name: 'bash', args: { command: marker, description: 'long' } }] }, { text: 'never' }]))
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { PATH: process.env.PATH, WORKSPACE_DIR: dirs.workspaceDir, STATE_DIR: dirs.stateDir, PORT: String(port), HOST: '127.0.0.1', SHUTDOWN_GRACE: '20', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    // Its log, for the message if the exit goes wrong (what the shutdown was waiting for).
    let stderr = ''
    child.stdout!.on('data', (chunk) => { stderr = (stderr + chunk).slice(-6000) })
    child.stderr!.on('data', (chunk) => { stderr = (stderr + chunk).slice(-6000) })
    const exited = new Promise<{ code: number | null, at: number }>(resolve => child.once('exit', code => resolve({ code, at: Date.now() })))
    try {
      await waitReady(url, 90_000)
      const h = { url, headers: {}, model } as unknown as Harness
      const body = scriptedSession(h, 'runs until SIGTERM')
      await createSession(h, body)
      const streamed = readStream(h, body.session_id)
      await until('the tool process', () => processesWith(marker).length > 0)
      const engine = enginePid(child.pid!)
      const sentAt = Date.now()
      child.kill('SIGTERM')
      const ready = await fetch(`${url}/ready`).catch(() => undefined)
      if (ready) assert.equal(ready.status, 503)
      const events = await streamed
      const terminal = events.at(-1)!
      assert.equal(terminal.event, 'error', JSON.stringify(terminal))
      assert.equal(terminal.data.code, 'shutdown')
      assert.equal(terminal.data.fatal, true)
      const { code, at } = await exited
      assert.equal(code, 0, stderr)
      assert.ok(at - sentAt < 20_000, `exited ${at - sentAt} ms after SIGTERM`)
      assert.equal(alive(engine), false, 'the engine is gone')
      assert.deepEqual(processesWith(marker), [], 'the tool process is gone')
      const record = JSON.parse(readFileSync(`${dirs.stateDir}/sessions/${body.session_id}/session.json`, 'utf8'))
      assert.equal(record.status, 'cancelled')
      assert.equal(record.error.code, 'shutdown')
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      await model.close()
      dirs.cleanup()
    }
  })

  test('a second SIGTERM forces the exit at once, and still nothing the engine started survives', async () => {
    const dirs = tempDirs()
    const model = await startModelServer()
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const marker = `sleep 64.${process.pid}`
    model.setHandler(scenario([{ toolCalls: [{ name: 'bash', args: { command: marker, description: 'long' } }] }, { text: 'never' }]))
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { PATH: process.env.PATH, WORKSPACE_DIR: dirs.workspaceDir, STATE_DIR: dirs.stateDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    })
    const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
    try {
      await waitReady(url, 90_000)
      const h = { url, headers: {}, model } as unknown as Harness
      await createSession(h, scriptedSession(h, 'forced exit'))
      await until('the tool process', () => processesWith(marker).length > 0)
      const engine = enginePid(child.pid!)
      child.kill('SIGTERM')
      // Two signals sent at once arrive as one: the second comes once the shutdown has begun.
      await until('the shutdown to begin', async () => (await fetch(`${url}/ready`).then(r => r.status, () => 0)) !== 200, 10_000)
      child.kill('SIGTERM')
      assert.equal(await exited, 1, 'a forced exit')
      await until('the engine to be gone', () => !alive(engine), 5_000)
      await until('the tool process to be gone', () => processesWith(marker).length === 0, 5_000)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      await model.close()
      dirs.cleanup()
    }
  })
})
