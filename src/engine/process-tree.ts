import { readdirSync, readFileSync } from 'node:fs'

/** A process as /proc shows it; `startTime` tells a live process from a later one reusing its pid. */
export interface ProcInfo {
  pid: number
  ppid: number
  pgid: number
  state: string
  startTime: string
}

export function readProc (pid: number): ProcInfo | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name is in parentheses and may itself contain spaces or parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return {
    pid,
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    startTime: fields[19] ?? '',
  }
}

function allProcs (): ProcInfo[] {
  let names: string[]
  try {
    names = readdirSync('/proc')
  } catch {
    return []
  }
  const out: ProcInfo[] = []
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    const info = readProc(Number(name))
    if (info !== undefined) out.push(info)
  }
  return out
}

/** Every live descendant of `root` (not `root` itself), however deep, whatever its process group. */
export function descendants (root: number): ProcInfo[] {
  const byParent = new Map<number, ProcInfo[]>()
  for (const proc of allProcs()) {
    const siblings = byParent.get(proc.ppid)
    if (siblings === undefined) byParent.set(proc.ppid, [proc])
    else siblings.push(proc)
  }
  const out: ProcInfo[] = []
  const queue = [root]
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of byParent.get(pid) ?? []) {
      out.push(child)
      queue.push(child.pid)
    }
  }
  return out
}

/** Alive and still the same process (zombies count as gone: only their parent can reap them). */
export function isAlive (proc: Pick<ProcInfo, 'pid' | 'startTime'>): boolean {
  const now = readProc(proc.pid)
  return now !== undefined && now.startTime === proc.startTime && now.state !== 'Z' && now.state !== 'X'
}

export function signal (pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

/** Signals each process that is still the one recorded (never a stranger that reused its pid). */
export function signalAll (procs: ProcInfo[], sig: NodeJS.Signals): void {
  for (const proc of procs) {
    if (isAlive(proc)) signal(proc.pid, sig)
  }
}

/**
 * Live processes with environment variable `name` whose value passes `match`. The engine's tools
 * inherit its environment, so a marker there finds them even after they lost their parent link
 * (an engine crash, or a sidecar that died with its engine).
 */
export function processesWithEnv (name: string, match: (value: string) => boolean): ProcInfo[] {
  const out: ProcInfo[] = []
  const prefix = `${name}=`
  for (const proc of allProcs()) {
    if (proc.pid === process.pid || proc.state === 'Z') continue
    let environ: string
    try {
      environ = readFileSync(`/proc/${proc.pid}/environ`, 'latin1')
    } catch {
      continue
    }
    const entry = environ.split('\0').find(e => e.startsWith(prefix))
    if (entry !== undefined && match(entry.slice(prefix.length))) out.push(proc)
  }
  return out
}
