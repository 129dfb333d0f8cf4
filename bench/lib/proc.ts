import { readFileSync, readdirSync } from 'node:fs'
import os from 'node:os'
import { descendants } from '../../src/engine/process-tree.js'

/** VmRSS of one process in bytes (0 when it is gone). */
export function rssOf (pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** RssAnon (heap, stacks) and RssFile (mapped files: mostly the node binary's own code) in bytes. */
export function rssParts (pid: number): { anon: number, file: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024
    return { anon: kb('RssAnon'), file: kb('RssFile') }
  } catch {
    return { anon: 0, file: 0 }
  }
}

/** VmRSS of a process and all its descendants (shared pages counted in each, an upper bound). */
export function treeRss (pid: number): number {
  return rssOf(pid) + descendants(pid).reduce((sum, p) => sum + rssOf(p.pid), 0)
}

export const MB = 1024 * 1024

export function machine (): Record<string, unknown> {
  const cpus = os.cpus()
  return {
    cpu_model: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    available_parallelism: os.availableParallelism(),
    memory_bytes: os.totalmem(),
    memory_gib: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node_version: process.version,
    date: new Date().toISOString(),
  }
}

/** CPU time (user + system) a process has used so far, in ms (0 when it is gone). */
export function cpuMsOf (pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) * (1000 / 100) // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0
  }
}

/**
 * Sets the nice value of every thread of a process (Linux keeps it per thread; a thread started
 * later inherits its creator's). Processes the target starts afterwards inherit it too.
 */
export function reniceThreads (pid: number, nice: number): void {
  for (const tid of readdirSync(`/proc/${pid}/task`)) os.setPriority(Number(tid), nice)
}
