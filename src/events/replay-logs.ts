import { EventLog } from './event-log.js'

export interface ReplayLease {
  log: EventLog
  /** Idempotent; the log is dropped from memory when its last lease is released. */
  release: () => void
}

interface Entry {
  promise: Promise<EventLog>
  leases: number
}

/**
 * Replay-only logs of ended sessions, loaded on demand and shared: a hundred clients replaying
 * the same ended session hold one copy of it, and none once they are all gone.
 */
export class ReplayLogs {
  readonly #entries = new Map<string, Entry>()

  /** Logs currently in memory. */
  get size (): number { return this.#entries.size }

  async acquire (file: string): Promise<ReplayLease> {
    let entry = this.#entries.get(file)
    if (entry === undefined) {
      entry = { promise: EventLog.read(file), leases: 0 }
      this.#entries.set(file, entry)
    }
    const current = entry
    current.leases++
    let log: EventLog
    try {
      log = await current.promise
    } catch (err) {
      this.#drop(file, current)
      throw err
    }
    let released = false
    return {
      log,
      release: () => {
        if (released) return
        released = true
        this.#drop(file, current)
      },
    }
  }

  #drop (file: string, entry: Entry): void {
    entry.leases--
    if (entry.leases <= 0 && this.#entries.get(file) === entry) this.#entries.delete(file)
  }
}
