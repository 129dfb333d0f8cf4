import type { SessionEventType } from '../../src/events/types.js'

/** Events appended per event-loop turn, as a busy engine stream delivers them in chunks. */
export const FANOUT_BATCH = 50

const TIMESTAMP = '2026-01-19T21:30:00.000Z'

/** Event `id` of `n`: tool output lines, the last one the terminal `complete`. */
export function fanoutEvent (id: number, n: number): { event: SessionEventType, data: Record<string, unknown> } {
  if (id === n) {
    return { event: 'complete', data: { final_message: 'done', files_modified: [], duration_ms: 1, timestamp: TIMESTAMP } }
  }
  return {
    event: 'output',
    data: { type: 'stdout', text: `line ${id} of the fan-out benchmark output\n`, source: 'tool', tool: 'bash', call_id: 'call_bench', timestamp: TIMESTAMP },
  }
}
