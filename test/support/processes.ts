import { readdirSync, readFileSync } from 'node:fs'

/** Live processes (not this one) whose command line, arguments joined by spaces, contains `marker`. */
export function processesWith (marker: string): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(marker) && alive(Number(name))) pids.push(Number(name))
    } catch {}
  }
  return pids
}

/** Running, not a zombie. */
export function alive (pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z')
  } catch {
    return false
  }
}
