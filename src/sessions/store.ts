import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { SessionStatusType } from '../../schemas/session.js'

/** What is persisted of a session: its status (never its key) and the engine session it ran in. */
export interface SessionRecord extends Omit<SessionStatusType, 'stream_url'> {
  engine_session_id: string | null
}

const RECORD = 'session.json'
const EVENTS = 'events.ndjson'

/** `<STATE_DIR>/sessions/<session_id>/{session.json,events.ndjson}` */
export class SessionStore {
  readonly root: string

  constructor (stateDir: string) {
    this.root = path.join(stateDir, 'sessions')
  }

  init (): void {
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 })
  }

  dir (sessionId: string): string {
    return path.join(this.root, sessionId)
  }

  eventsFile (sessionId: string): string {
    return path.join(this.dir(sessionId), EVENTS)
  }

  /** Atomic replace (write + rename), so a crash leaves the old record or the new one. */
  save (record: SessionRecord): void {
    const dir = this.dir(record.session_id)
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    const file = path.join(dir, RECORD)
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 })
    fs.renameSync(tmp, file)
  }

  /** Every readable record; a directory without one (a crash before the first save) is removed. */
  loadAll (): SessionRecord[] {
    const records: SessionRecord[] = []
    let names: string[]
    try {
      names = fs.readdirSync(this.root)
    } catch {
      return records
    }
    for (const name of names) {
      try {
        records.push(JSON.parse(fs.readFileSync(path.join(this.root, name, RECORD), 'utf8')) as SessionRecord)
      } catch {
        fs.rmSync(path.join(this.root, name), { recursive: true, force: true })
      }
    }
    return records
  }

  async remove (sessionId: string): Promise<void> {
    await fsp.rm(this.dir(sessionId), { recursive: true, force: true })
  }
}
