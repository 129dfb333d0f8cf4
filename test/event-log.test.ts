import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { EventLog, LOG_LIMIT_CODE } from '../src/events/event-log.js'
import { ReplayLogs } from '../src/events/replay-logs.js'
import { isTerminal, type LoggedEvent } from '../src/events/types.js'

function tempFile (t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'event-log-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return path.join(dir, 'sessions', 'abc', 'events.ndjson')
}

function snapshot (events: readonly LoggedEvent[]): Array<{ id: number, event: string, data: Record<string, unknown>, frame: string }> {
  return events.map((e) => ({ id: e.id, event: e.event, data: e.data, frame: e.frame }))
}

test('ids start at 1, persist, and continue after reopening', (t) => {
  const file = tempFile(t)
  const log = EventLog.open(file)
  assert.equal(log.lastId, 0)
  assert.equal(log.append('status', { status: 'running', progress: 0 })?.id, 1)
  assert.equal(log.append('output', { type: 'stdout', text: 'hi', source: 'assistant' })?.id, 2)
  const before = snapshot(log.after(0))
  log.close()
  assert.equal(log.append('output', { text: 'late' }), null, 'a closed log refuses appends')

  const reopened = EventLog.open(file)
  assert.equal(reopened.lastId, 2)
  assert.deepEqual(snapshot(reopened.after(0)), before)
  assert.equal(reopened.append('output', { type: 'stdout', text: 'again', source: 'assistant' })?.id, 3)
  reopened.close()
  assert.deepEqual(EventLog.open(file).after(0).map((e) => e.id), [1, 2, 3])
})

test('frames are SSE frames with one-line JSON, and timestamps are added when absent', (t) => {
  const log = EventLog.open(tempFile(t))
  t.after(() => log.close())
  const e = log.append('output', { type: 'stdout', text: 'a\nb\r\nc', source: 'assistant' })
  assert.ok(e)
  assert.match(e.frame, /^event: output\nid: 1\ndata: [^\n]+\n\n$/)
  assert.match(String(e.data.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.equal(log.append('status', { status: 'running', progress: 5, timestamp: 'kept' })?.data.timestamp, 'kept')
  assert.deepEqual(log.at(0)?.data, e.data, 'stored events parse their data back from the frame')
})

test('a torn last line is ignored and cut away; ids continue from the last whole line', (t) => {
  const file = tempFile(t)
  const log = EventLog.open(file)
  log.append('status', { status: 'running', progress: 0 })
  log.append('output', { type: 'stdout', text: 'x', source: 'assistant' })
  log.close()
  const whole = fs.statSync(file).size
  fs.appendFileSync(file, '{"id":3,"event":"output","data":{"type":"std')

  const reopened = EventLog.open(file)
  assert.equal(reopened.lastId, 2)
  assert.equal(fs.statSync(file).size, whole, 'the torn bytes are truncated away')
  assert.equal(reopened.append('output', { type: 'stdout', text: 'y', source: 'assistant' })?.id, 3)
  reopened.close()
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  assert.equal(lines.pop(), '')
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { id: number }).id), [1, 2, 3])
})

test('replay-only reads ignore a torn line without touching the file', async (t) => {
  const file = tempFile(t)
  const log = EventLog.open(file)
  log.append('status', { status: 'running', progress: 0 })
  log.close()
  fs.appendFileSync(file, '{"id":2,')
  const size = fs.statSync(file).size
  const read = await EventLog.read(file)
  assert.equal(read.lastId, 1)
  assert.equal(read.ended, true)
  assert.equal(read.append('status', { status: 'running', progress: 1 }), null)
  assert.equal(fs.statSync(file).size, size)
})

test('terminal events end the log: later appends are refused, also after reopening', (t) => {
  assert.equal(isTerminal('complete', {}), true)
  assert.equal(isTerminal('error', { fatal: true }), true)
  assert.equal(isTerminal('error', { fatal: false }), false)
  assert.equal(isTerminal('status', { status: 'cancelled' }), true)
  assert.equal(isTerminal('status', { status: 'running' }), false)
  assert.equal(isTerminal('output', { fatal: true }), false)

  for (const [event, data] of [
    ['complete', { final_message: 'done', files_modified: [], duration_ms: 5 }],
    ['error', { error: 'boom', code: 'engine_crash', fatal: true }],
    ['status', { status: 'cancelled', progress: 10 }],
  ] as const) {
    const file = tempFile(t)
    const log = EventLog.open(file)
    log.append('error', { error: 'slow down', code: 'rate_limit', fatal: false, retry_after: 2 })
    assert.equal(log.terminal === null, true)
    const terminal = log.append(event, data)
    assert.equal(terminal?.id, 2)
    assert.equal(log.terminal?.id, 2)
    assert.equal(log.ended, true)
    assert.equal(log.append('output', { type: 'stdout', text: 'late', source: 'assistant' }), null)
    assert.equal(log.append('complete', { final_message: 'again' }), null)
    log.close()
    const reopened = EventLog.open(file)
    assert.equal(reopened.terminal?.id, 2)
    assert.equal(reopened.append('status', { status: 'running', progress: 1 }), null)
    assert.equal(reopened.lastId, 2)
    reopened.close()
  }
})

test('listeners run after the line is in the file, in order; unsubscribe works', (t) => {
  const file = tempFile(t)
  const log = EventLog.open(file)
  t.after(() => log.close())
  const seen: number[] = []
  const unsubscribe = log.onAppend((e) => {
    const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n')
    assert.equal((JSON.parse(lines[lines.length - 1]) as { id: number }).id, e.id)
    seen.push(e.id)
    if (e.id === 1) log.append('status', { status: 'running', progress: 1 })
  })
  const second: number[] = []
  log.onAppend((e) => second.push(e.id))
  log.append('status', { status: 'running', progress: 0 })
  assert.deepEqual(seen, [1, 2])
  assert.deepEqual(second, [1, 2], 'an append from a listener reaches everyone after the current one')
  unsubscribe()
  log.append('status', { status: 'running', progress: 2 })
  assert.deepEqual(seen, [1, 2])
  assert.deepEqual(second, [1, 2, 3])
})

test('after(id) and indexAfter(id) find the events past a cursor', (t) => {
  const log = EventLog.open(tempFile(t))
  t.after(() => log.close())
  for (let i = 0; i < 10; i++) log.append('output', { type: 'stdout', text: String(i), source: 'tool' })
  assert.deepEqual(log.after(7).map((e) => e.id), [8, 9, 10])
  assert.deepEqual(log.after(0).length, 10)
  assert.deepEqual(log.after(10), [])
  assert.deepEqual(log.after(99), [])
  assert.equal(log.indexAfter(3), 3)
  assert.deepEqual([...log.eventsAfter(8)].map((e) => e.id), [9, 10])
})

test('past maxBytes: output is dropped with one log_limit notice, other events still land', (t) => {
  const file = tempFile(t)
  const log = EventLog.open(file, { maxBytes: 2000, reserveBytes: 3000, truncatedOutputBytes: 100 })
  const text = 'x'.repeat(100)
  let stored = 0
  for (let i = 0; i < 50; i++) {
    if (log.append('output', { type: 'stdout', text, source: 'tool' }) !== null) stored++
  }
  assert.ok(stored > 5 && stored < 20, `some output fits (${stored})`)
  const notices = log.after(0).filter((e) => e.event === 'error')
  assert.equal(notices.length, 1)
  assert.equal(notices[0].data.code, LOG_LIMIT_CODE)
  assert.equal(notices[0].data.fatal, false)
  assert.match(String(notices[0].data.error), /output was dropped/)
  assert.equal(log.limitReached, true)

  const result = log.append('tool_result', {
    tool: 'bash', call_id: 'c1', status: 'completed', result: { output: 'y'.repeat(10_000), title: 't' }, duration_ms: 3,
  })
  assert.ok(result)
  const output = (result.data.result as { output: string }).output
  assert.ok(output.startsWith('y'.repeat(100)) && output.length < 200, 'tool output is truncated')
  assert.match(output, /truncated/)
  assert.ok(log.append('tool_call', { tool: 'bash', call_id: 'c2', args: { command: 'ls' } }))
  assert.ok(log.append('status', { status: 'running', progress: 50 }))

  // Past the reserve only the terminal event is stored.
  for (let i = 0; i < 100; i++) log.append('status', { status: 'running', progress: 51, message: text })
  assert.ok(log.bytes <= 2000 + 3000)
  assert.equal(log.append('output', { type: 'stdout', text: 'more', source: 'tool' }), null)
  const big = 'z'.repeat(10_000)
  assert.ok(log.append('complete', { final_message: big, files_modified: [], duration_ms: 9 }), 'the terminal event always lands')
  assert.equal(log.after(0).filter((e) => e.event === 'error').length, 1, 'the notice is written once')
  log.close()

  const reopened = EventLog.open(file, { maxBytes: 2000 })
  assert.equal(reopened.limitReached, true)
  assert.equal(reopened.terminal?.event, 'complete')
  reopened.close()
})

test('the limit notice is not repeated after a reopen', (t) => {
  const file = tempFile(t)
  const log = EventLog.open(file, { maxBytes: 500 })
  for (let i = 0; i < 20; i++) log.append('output', { type: 'stdout', text: 'x'.repeat(50), source: 'tool' })
  log.close()
  const reopened = EventLog.open(file, { maxBytes: 500 })
  t.after(() => reopened.close())
  const lastId = reopened.lastId
  assert.equal(reopened.append('output', { type: 'stdout', text: 'x'.repeat(50), source: 'tool' }), null)
  assert.equal(reopened.lastId, lastId)
})

test('property: any JSON payloads round-trip through the file with identical frames', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'event-log-prop-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  let run = 0
  const payload = fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 5 })
  const type = fc.constantFrom('output', 'tool_call', 'tool_result', 'status' as const)
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(type, payload), { maxLength: 20 }), fc.nat(40), async (items, torn) => {
    const file = path.join(dir, `${run++}.ndjson`)
    const log = EventLog.open(file)
    for (const [event, data] of items) log.append(event, data)
    const expected = snapshot(log.after(0))
    log.close()
    fs.appendFileSync(file, '{"id":999,"event":"output","data":{"text":"torn"}}'.slice(0, torn))
    const reread = await EventLog.read(file)
    assert.deepEqual(snapshot(reread.after(0)), expected)
    assert.deepEqual(expected.map((e) => e.id), items.map((_, i) => i + 1))
    // The data round-trips exactly (JSON semantics, e.g. -0 becomes 0).
    for (let i = 0; i < items.length; i++) {
      const json = JSON.parse(JSON.stringify(items[i][1])) as Record<string, unknown>
      assert.deepEqual(expected[i].data, { ...json, timestamp: json.timestamp ?? expected[i].data.timestamp })
    }
  }), { numRuns: 60 })
})

test('ReplayLogs shares one load between concurrent replays and drops it after the last', async (t) => {
  const file = tempFile(t)
  const log = EventLog.open(file)
  log.append('complete', { final_message: 'ok', files_modified: [], duration_ms: 1 })
  const cache = new ReplayLogs()
  const [a, b] = await Promise.all([cache.acquire(file), cache.acquire(file)])
  assert.equal(a.log, b.log)
  assert.equal(cache.size, 1)
  a.release()
  a.release()
  assert.equal(cache.size, 1)
  b.release()
  assert.equal(cache.size, 0)
  await assert.rejects(cache.acquire(path.join(path.dirname(file), 'missing.ndjson')), { code: 'ENOENT' })
  assert.equal(cache.size, 0)
})

test('EventLog.remove deletes the session directory and tolerates a missing one', async (t) => {
  const file = tempFile(t)
  EventLog.open(file).close()
  await EventLog.remove(path.dirname(file))
  assert.equal(fs.existsSync(file), false)
  await EventLog.remove(path.dirname(file))
})

test('an event appended before a SIGKILL survives it', async (t) => {
  const file = tempFile(t)
  const moduleUrl = new URL('../src/events/event-log.ts', import.meta.url).href
  const script = `
    const { EventLog } = await import(${JSON.stringify(moduleUrl)})
    const log = EventLog.open(${JSON.stringify(file)})
    for (let i = 0; ; i++) {
      const e = log.append('output', { type: 'stdout', text: 'line ' + i + '\\n', source: 'tool' })
      process.stdout.write(e.id + '\\n')
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
  `
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: path.dirname(fileURLToPath(import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let lastAcknowledged = 0
  let buffered = ''
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      if (lines.length > 0) lastAcknowledged = Number(lines[lines.length - 1])
      if (lastAcknowledged >= 500 && child.exitCode === null && !child.killed) {
        child.kill('SIGKILL')
        resolve()
      }
    })
    child.once('exit', () => resolve())
  })
  await new Promise((resolve) => child.once('close', resolve))
  assert.ok(lastAcknowledged >= 500, 'the child appended events before it was killed')
  const log = EventLog.open(file)
  t.after(() => log.close())
  assert.ok(log.lastId >= lastAcknowledged, `${log.lastId} >= ${lastAcknowledged}`)
  assert.deepEqual(log.after(0).map((e) => e.id), Array.from({ length: log.lastId }, (_, i) => i + 1))
  assert.equal(log.append('status', { status: 'failed', progress: 0 })?.id, log.lastId)
})
