/** The six stored event types of the contract's stream (`heartbeat` is never stored). */
export type SessionEventType = 'output' | 'tool_call' | 'tool_result' | 'status' | 'error' | 'complete'

export const SESSION_EVENT_TYPES: readonly SessionEventType[] = [
  'output', 'tool_call', 'tool_result', 'status', 'error', 'complete',
]

export interface LoggedEvent {
  readonly id: number
  readonly event: SessionEventType
  readonly data: Record<string, unknown>
  /** The complete SSE frame, serialized once when the event was appended or loaded. */
  readonly frame: string
}

export const HEARTBEAT_FRAME = 'event: heartbeat\ndata: {}\n\n'

export function isSessionEventType (value: unknown): value is SessionEventType {
  return typeof value === 'string' && (SESSION_EVENT_TYPES as readonly string[]).includes(value)
}

/** The session's last event: `complete`, a fatal `error`, or `status` `cancelled`. */
export function isTerminal (event: SessionEventType, data: Record<string, unknown>): boolean {
  if (event === 'complete') return true
  if (event === 'error') return data.fatal === true
  if (event === 'status') return data.status === 'cancelled'
  return false
}

export function framePrefix (id: number, event: SessionEventType): string {
  return `event: ${event}\nid: ${id}\ndata: `
}

/** `json` must be one line, which `JSON.stringify` without indentation guarantees. */
export function buildFrame (id: number, event: SessionEventType, json: string): string {
  return `${framePrefix(id, event)}${json}\n\n`
}

export function retryFrame (ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`
}
