import { lstat, readdir } from 'node:fs/promises'
import path from 'node:path'

/** path (relative, `/`-separated) → `mtimeMs:size` */
export type WorkspaceSnapshot = Map<string, string>

const SKIPPED_DIRS = new Set(['.git'])
const STAT_BATCH = 64

/**
 * Records every file of the workspace with its modification time and size, so the files a
 * session changed by any means (its bash included) can be found afterwards. Bounded: past
 * `maxEntries` the walk stops (and `complete` says so) rather than stall on a huge tree.
 */
export async function snapshotWorkspace (root: string, maxEntries = 200_000): Promise<{ files: WorkspaceSnapshot, complete: boolean }> {
  const files: WorkspaceSnapshot = new Map()
  const queue = ['']
  let entries = 0
  while (queue.length) {
    const relative = queue.pop()!
    let names: string[]
    try {
      names = await readdir(path.join(root, relative))
    } catch {
      continue
    }
    if (entries + names.length > maxEntries) {
      names = names.slice(0, maxEntries - entries)
      entries = maxEntries + 1
    } else {
      entries += names.length
    }
    // A directory's entries are stat'ed concurrently, a batch at a time: one after the other, each
    // waits for a round trip through libuv's thread pool (a few ms for a small workspace).
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const batch = names.slice(i, i + STAT_BATCH)
      const stats = await Promise.all(batch.map(name => lstat(path.join(root, relative, name)).catch(() => undefined)))
      for (const [k, stat] of stats.entries()) {
        if (stat === undefined) continue // removed while walking
        const name = batch[k]
        const rel = relative ? `${relative}/${name}` : name
        if (stat.isDirectory()) {
          if (!SKIPPED_DIRS.has(name)) queue.push(rel)
        } else {
          files.set(rel, `${stat.mtimeMs}:${stat.size}`)
        }
      }
    }
    if (entries > maxEntries) return { files, complete: false }
  }
  return { files, complete: true }
}

/** Files created, changed or deleted between two snapshots. */
export function changedFiles (before: WorkspaceSnapshot, after: WorkspaceSnapshot): string[] {
  const changed: string[] = []
  for (const [file, stamp] of after) if (before.get(file) !== stamp) changed.push(file)
  for (const file of before.keys()) if (!after.has(file)) changed.push(file)
  return changed
}
