import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { scenario } from './support/model-server.js'
import { createSession, readStream, scriptedSession, startHarness, waitReady, type Harness } from './support/harness.js'
import { tempDirs } from './support/config.js'

/** Mounting a tmpfs needs root (CAP_SYS_ADMIN): CI and developers' machines here have it. */
function canMount (): boolean {
  const probe = tempDirs()
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe.workspaceDir], { stdio: 'ignore' })
    execFileSync('umount', [probe.workspaceDir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    probe.cleanup()
  }
}

const mountable = canMount()
const mount = (dir: string, options: string) => execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir])
const remount = (dir: string, mode: 'ro' | 'rw') => execFileSync('mount', ['-o', `remount,${mode}`, dir])

let h: Harness | undefined
let mounted: string[] = []
let root: string | undefined

before(async () => {
  if (!mountable) return
  // STATE_DIR and WORKSPACE_DIR on small tmpfs mounts of their own, so they can be filled and made read-only.
  const dirs = tempDirs()
  root = dirs.root
  const state = path.join(dirs.root, 'state-fs')
  const workspace = path.join(dirs.root, 'workspace-fs')
  mkdirSync(state)
  mkdirSync(workspace)
  mount(state, 'size=256m')
  mount(workspace, 'size=16m')
  mounted = [state, workspace]
  h = await startHarness({ STATE_DIR: state, WORKSPACE_DIR: workspace })
})

after(async () => {
  await h?.close().catch(() => {})
  for (const dir of mounted) execFileSync('umount', ['-l', dir])
  if (root) rmSync(root, { recursive: true, force: true })
})

// Skipped where tmpfs cannot be mounted (not root): the test needs real full and read-only file systems.
test('full workspace and state dir, read-only workspace: clear 503s, /ready says why, no crash, back when fixed', { skip: mountable ? false : 'cannot mount tmpfs here (needs root)' }, async () => {
  const harness = h!
  const [state, workspace] = mounted
  const expectNotReady = async (pattern: RegExp) => {
    const ready = await fetch(`${harness.url}/ready`)
    assert.equal(ready.status, 503)
    assert.match((await ready.json()).error, pattern)
    const res = await fetch(`${harness.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(scriptedSession(harness, 'refused')) })
    assert.equal(res.status, 503)
    assert.match((await res.json()).error, pattern)
    assert.equal((await fetch(`${harness.url}/healthz`)).status, 200)
  }

  for (const dir of [workspace, state]) {
    const label = dir === state ? 'state' : 'workspace'
    const filler = path.join(dir, 'filler')
    try { execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=1024'], { stdio: 'ignore' }) } catch {}
    try { writeFileSync(path.join(dir, 'last-bytes'), Buffer.alloc(64 * 1024)) } catch {}
    await expectNotReady(new RegExp(`${label} is not writable \\(ENOSPC\\)`))
    rmSync(filler, { force: true })
    rmSync(path.join(dir, 'last-bytes'), { force: true })
    await waitReady(harness.url, 60_000)

    // The state dir cannot be remounted read-only under the running engine (its database is open
    // for writing: "mount point is busy"), so only the workspace is turned read-only here.
    if (dir === state) continue
    remount(dir, 'ro')
    try {
      await expectNotReady(new RegExp(`${label} directory is not readable and writable \\(EROFS\\)`))
    } finally {
      remount(dir, 'rw')
    }
    await waitReady(harness.url, 60_000)
  }

  harness.model.setHandler(scenario([{ text: 'the disks are back' }]))
  const body = scriptedSession(harness, 'after the disks')
  await createSession(harness, body)
  assert.equal((await readStream(harness, body.session_id)).at(-1)!.event, 'complete')
})
