import { lstat, readdir } from 'node:fs/promises'
import path from 'node:path'

/** path (relative, `/`-separated) → `mtimeMs:size` */
export type WorkspaceSnapshot = Map<string, string>

const SKIPPED_DIRS = new Set(['.git'])

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
    for (const name of names) {
      if (++entries > maxEntries) return { files, complete: false }
      const rel = relative ? `${relative}/${name}` : name
      try {
        const stat = await lstat(path.join(root, rel))
        if (stat.isDirectory()) {
          if (!SKIPPED_DIRS.has(name)) queue.push(rel)
        } else {
          files.set(rel, `${stat.mtimeMs}:${stat.size}`)
        }
      } catch {
        // removed while walking
      }
    }
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
