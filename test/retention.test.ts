import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { pino } from 'pino'
import { SessionManager } from '../src/sessions/manager.js'
import { SessionStore, type SessionRecord } from '../src/sessions/store.js'
import { tempDirs, testConfig } from './support/config.js'

const HOUR = 3600_000

function ended (n: number, finishedAgoMs: number): SessionRecord {
  const at = new Date(Date.now() - finishedAgoMs).toISOString()
  return {
    session_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    status: 'completed',
    progress: 100,
    created_at: at,
    started_at: at,
    updated_at: at,
    finished_at: at,
    cancelled_at: null,
    model: { provider: 'openai', model: 'm' },
    last_event_id: 1,
    final_message: 'ok',
    files_modified: [],
    error: null,
    usage: null,
    engine_session_id: null,
  }
}

async function sweepWith (records: SessionRecord[], env: Record<string, string>): Promise<{ kept: string[], store: SessionStore }> {
  const dirs = tempDirs()
  const store = new SessionStore(dirs.stateDir)
  store.init()
  for (const r of records) store.save(r)
  const manager = new SessionManager(testConfig(dirs, { OPENCODE_BIN: '/nonexistent/opencode', ...env }), pino({ level: 'silent' }))
  try {
    await manager.start()
    await (manager as unknown as { sweep: () => Promise<void> }).sweep()
    const kept = records.map(r => r.session_id).filter(id => manager.findStatus(id) !== undefined)
    for (const r of records) assert.equal(existsSync(store.dir(r.session_id)), kept.includes(r.session_id), `${r.session_id} on disk iff kept`)
    return { kept, store }
  } finally {
    await manager.close()
    dirs.cleanup()
  }
}

test('retention: past SESSION_RETENTION_COUNT the oldest ended sessions go, whatever their order on disk', async () => {
  const records = [ended(1, 5000), ended(2, 1000), ended(3, 4000), ended(4, 2000), ended(5, 3000)]
  const { kept } = await sweepWith(records, { SESSION_RETENTION_COUNT: '3' })
  assert.deepEqual(kept.sort(), [ended(2, 0), ended(4, 0), ended(5, 0)].map(r => r.session_id).sort())
})

test('retention: under the count, only sessions older than SESSION_RETENTION_HOURS go', async () => {
  const records = [ended(1, 2 * HOUR), ended(2, 1000), ended(3, HOUR + 60_000), ended(4, HOUR - 60_000)]
  const { kept } = await sweepWith(records, { SESSION_RETENTION_COUNT: '10', SESSION_RETENTION_HOURS: '1' })
  assert.deepEqual(kept.sort(), [records[1], records[3]].map(r => r.session_id).sort())
})

test('retention: over the count, age still applies to the newest', async () => {
  const records = [ended(1, 2 * HOUR), ended(2, 3 * HOUR), ended(3, 1000)]
  const { kept } = await sweepWith(records, { SESSION_RETENTION_COUNT: '2', SESSION_RETENTION_HOURS: '1' })
  assert.deepEqual(kept, [records[2].session_id])
})
