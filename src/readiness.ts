import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { access, open, readFile, rm } from 'node:fs/promises'
import path from 'node:path'

export const PROBE_PREFIX = '.opencode-server-ready-'

/** A readiness condition: resolves to null when satisfied, else to the reason it is not. */
export type ReadinessCheck = () => Promise<string | null> | string | null

/** Readiness is the conjunction of named checks, and false once shutdown begins. */
export class Readiness {
  private readonly checks: Array<{ name: string, check: ReadinessCheck }> = []
  private shutdownReason: string | null = null

  add (name: string, check: ReadinessCheck): void {
    this.checks.push({ name, check })
  }

  shutdown (reason = 'shutting down'): void {
    this.shutdownReason = reason
  }

  get shuttingDown (): boolean {
    return this.shutdownReason !== null
  }

  /** null when ready, else the first failing reason. */
  async reason (): Promise<string | null> {
    if (this.shutdownReason) return this.shutdownReason
    for (const { name, check } of this.checks) {
      try {
        const reason = await check()
        if (reason) return reason
      } catch (err) {
        return `${name} check failed: ${(err as Error).message}`
      }
    }
    return null
  }
}

/**
 * A directory is usable when it is readable and a file can really be written in it, read back
 * and removed (catches read-only mounts and full disks). `label` names it in the reason.
 */
export async function checkDirectory (dir: string, label = 'workspace'): Promise<string | null> {
  try {
    await access(dir, constants.R_OK | constants.W_OK | constants.X_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOENT' ? `${label} directory does not exist` : `${label} directory is not readable and writable (${code})`
  }
  const probe = path.join(dir, `${PROBE_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`)
  const content = 'ready-check'
  try {
    const file = await open(probe, 'wx')
    try {
      await file.writeFile(content)
    } finally {
      await file.close()
    }
    if (await readFile(probe, 'utf8') !== content) return `${label} write check read back different content`
    return null
  } catch (err) {
    return `${label} is not writable (${(err as NodeJS.ErrnoException).code ?? 'error'})`
  } finally {
    await rm(probe, { force: true }).catch(() => {})
  }
}
