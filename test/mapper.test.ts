import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { ELIDED_MARKER, EventMapper, newToolOutput, type EnginePart } from '../src/sessions/mapper.js'

function setup () {
  const events: Array<{ event: string, data: Record<string, unknown> }> = []
  const mapper = new EventMapper((event, data) => events.push({ event, data }), '/ws')
  return { events, mapper }
}

const tool = (status: string, extra: Partial<NonNullable<EnginePart['state']>> = {}): EnginePart => ({
  id: 'p-tool',
  sessionID: 's',
  messageID: 'm1',
  type: 'tool',
  tool: 'bash',
  callID: 'c1',
  state: { status, input: { command: 'seq 3' }, ...extra },
})

test('assistant text: deltas are sent, user text is not, and a full update adds only the missing suffix', () => {
  const { events, mapper } = setup()
  mapper.message('u1', 'user')
  mapper.part({ id: 'p-user', sessionID: 's', messageID: 'u1', type: 'text', text: 'the prompt' })
  mapper.message('m1', 'assistant')
  mapper.part({ id: 'p1', sessionID: 's', messageID: 'm1', type: 'text', text: '' })
  mapper.delta('m1', 'p1', 'Hel')
  mapper.delta('m1', 'p1', 'lo')
  mapper.part({ id: 'p1', sessionID: 's', messageID: 'm1', type: 'text', text: 'Hello world' })
  mapper.part({ id: 'p1', sessionID: 's', messageID: 'm1', type: 'text', text: 'Hello world' })
  mapper.close()
  const text = events.filter(e => e.event === 'output').map(e => e.data.text).join('')
  assert.equal(text, 'Hello world')
  assert.ok(events.every(e => e.data.source === 'assistant'))
})

test('an isolated delta goes out at once; a burst is coalesced', async () => {
  const { events, mapper } = setup()
  mapper.message('m1', 'assistant')
  mapper.part({ id: 'p1', sessionID: 's', messageID: 'm1', type: 'text', text: '' })
  mapper.delta('m1', 'p1', 'a')
  assert.equal(events.length, 1)
  for (const c of 'bcdefg') mapper.delta('m1', 'p1', c)
  assert.equal(events.length, 1)
  await sleep(60)
  assert.equal(events.length, 2)
  assert.equal(events[1].data.text, 'bcdefg')
})

test('parts of a message whose role is not known yet wait for it', () => {
  const { events, mapper } = setup()
  mapper.part({ id: 'p1', sessionID: 's', messageID: 'm1', type: 'text', text: 'hi' })
  assert.equal(events.length, 0)
  mapper.message('m1', 'assistant')
  mapper.close()
  assert.deepEqual(events.map(e => e.data.text), ['hi'])
})

test('a tool: one call, only new console output, one result with its duration; replays add nothing', () => {
  const { events, mapper } = setup()
  mapper.message('m1', 'assistant')
  mapper.part(tool('pending'))
  mapper.part(tool('running', { metadata: { output: '1\n' } }))
  mapper.part(tool('running', { metadata: { output: '1\n2\n' } }))
  const done = tool('completed', { output: '1\n2\n3\n', title: 'seq 3', metadata: { output: '1\n2\n3\n', exit: 0 }, time: { start: 1000, end: 1250 } })
  mapper.part(done)
  mapper.part(done)
  mapper.part(tool('running', { metadata: { output: '1\n' } }))
  assert.deepEqual(events.map(e => e.event), ['tool_call', 'output', 'output', 'output', 'tool_result'])
  assert.deepEqual(events[0].data, { tool: 'bash', call_id: 'c1', args: { command: 'seq 3' } })
  assert.equal(events.filter(e => e.event === 'output').map(e => e.data.text).join(''), '1\n2\n3\n')
  assert.ok(events.filter(e => e.event === 'output').every(e => e.data.source === 'tool' && e.data.call_id === 'c1'))
  assert.equal(events[4].data.status, 'completed')
  assert.equal(events[4].data.duration_ms, 250)
  assert.deepEqual(events[4].data.result, { output: '1\n2\n3\n', title: 'seq 3', metadata: { exit: 0 } }, 'metadata without its copy of the output')
})

test('tool metadata keeps a streamed output that differs from the result, and is left out when nothing else is in it', () => {
  const { events, mapper } = setup()
  mapper.message('m1', 'assistant')
  mapper.part(tool('completed', { output: 'short', metadata: { output: 'short' }, time: { start: 1, end: 2 } }))
  assert.deepEqual(events.at(-1)!.data.result, { output: 'short' })
  mapper.part({ ...tool('completed', { output: 'truncated…', metadata: { output: 'the whole output', exit: 1 } }), callID: 'c2' })
  assert.deepEqual(events.at(-1)!.data.result, { output: 'truncated…', metadata: { output: 'the whole output', exit: 1 } })
})

test('a failed tool reports its error; usage is counted once per step; written files are relative', () => {
  const { events, mapper } = setup()
  mapper.message('m1', 'assistant')
  mapper.part({ ...tool('error', { error: 'denied' }), tool: 'write', state: { status: 'error', input: { filePath: '/ws/a.txt' }, error: 'denied' } })
  const step: EnginePart = { id: 'st1', sessionID: 's', messageID: 'm1', type: 'step-finish', tokens: { input: 10, output: 5 } }
  mapper.part(step)
  mapper.part(step)
  mapper.part({ id: 'pt', sessionID: 's', messageID: 'm1', type: 'patch', files: ['/ws/src/b.ts', '/elsewhere/c'] })
  mapper.part({ ...tool('completed'), callID: 'c2', tool: 'edit', state: { status: 'completed', input: { filePath: '/ws/d.txt' }, output: '' } })
  const result = events.find(e => e.event === 'tool_result')!
  assert.equal(result.data.status, 'error')
  assert.equal((result.data.result as { error: string }).error, 'denied')
  assert.deepEqual(mapper.usage, { input_tokens: 10, output_tokens: 5 })
  assert.deepEqual([...mapper.files].sort(), ['d.txt', 'src/b.ts'])
})

test('tool output past the engine\'s window: continues after the last sent text, marks a gap it cannot see', () => {
  const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join('')
  // Within the window: plain suffixes.
  assert.equal(newToolOutput('', lines(1, 3)), lines(1, 3))
  assert.equal(newToolOutput(lines(1, 3), lines(1, 5)), lines(4, 5))
  assert.equal(newToolOutput(lines(1, 5), lines(1, 5)), '')
  // The window moved (head … tail), but still holds what was sent last: no loss, no repeat.
  const seen = lines(1, 500)
  const moved = `${lines(1, 50)}\n...\n${lines(300, 700)}`
  assert.equal(newToolOutput(seen, moved), lines(501, 700))
  // The window moved past unseen output: what is visible is sent after a marker.
  const jumped = `${lines(1, 50)}\n...\n${lines(900, 1000)}`
  assert.equal(newToolOutput(seen, jumped), ELIDED_MARKER + jumped.slice(lines(1, 50).length))
})

test('a replayed running update after completion adds nothing', () => {
  const { events, mapper } = setup()
  mapper.message('m1', 'assistant')
  mapper.part(tool('running', { metadata: { output: 'a\n' } }))
  mapper.part(tool('completed', { output: 'a\nb\n', metadata: { output: 'a\nb\n' } }))
  mapper.part(tool('running', { metadata: { output: 'a\n' } }))
  assert.equal(events.filter(e => e.event === 'output').map(e => e.data.text).join(''), 'a\nb\n')
})
