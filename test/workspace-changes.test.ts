import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { changedFiles, snapshotWorkspace } from '../src/sessions/workspace-changes.js'
import { tempDirs } from './support/config.js'

test('workspace snapshots: every file below the root except .git, and the changes between two', async () => {
  const dirs = tempDirs()
  const root = dirs.workspaceDir
  try {
    mkdirSync(path.join(root, 'src/deep/er'), { recursive: true })
    mkdirSync(path.join(root, '.git/objects'), { recursive: true })
    writeFileSync(path.join(root, '.git/objects/x'), 'git')
    writeFileSync(path.join(root, 'README.md'), 'readme')
    writeFileSync(path.join(root, 'src/keep.ts'), 'keep')
    writeFileSync(path.join(root, 'src/edit.ts'), 'edit')
    writeFileSync(path.join(root, 'src/gone.ts'), 'gone')
    // More entries in one directory than one batch of concurrent stats.
    for (let i = 0; i < 150; i++) writeFileSync(path.join(root, 'src/deep/er', `f${i}.txt`), String(i))
    const before = await snapshotWorkspace(root)
    assert.equal(before.complete, true)
    assert.equal(before.files.size, 4 + 150)
    assert.ok(before.files.has('src/deep/er/f149.txt'))
    assert.ok(![...before.files.keys()].some(f => f.startsWith('.git')))

    writeFileSync(path.join(root, 'src/edit.ts'), 'edited, longer')
    utimesSync(path.join(root, 'src/edit.ts'), new Date(), new Date(Date.now() + 5000))
    rmSync(path.join(root, 'src/gone.ts'))
    writeFileSync(path.join(root, 'src/deep/new.ts'), 'new')
    const after = await snapshotWorkspace(root)
    assert.deepEqual(changedFiles(before.files, after.files).sort(), ['src/deep/new.ts', 'src/edit.ts', 'src/gone.ts'])

    const bounded = await snapshotWorkspace(root, 100)
    assert.equal(bounded.complete, false)
    assert.ok(bounded.files.size <= 100)
    // Entries (files and directories, .git included): 3 at the root, 3 in src, 2 in src/deep, 150.
    assert.equal((await snapshotWorkspace(root, 158)).complete, true)
    assert.equal((await snapshotWorkspace(root, 157)).complete, false)
  } finally {
    dirs.cleanup()
  }
})
