import { Type } from '@sinclair/typebox'
import { SESSION_STATES } from './session.js'

const timestamp = Type.String({ format: 'date-time' })

export const OutputEvent = Type.Object({
  type: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]),
  text: Type.String(),
  source: Type.Union([Type.Literal('assistant'), Type.Literal('tool')]),
  tool: Type.Optional(Type.String()),
  call_id: Type.Optional(Type.String()),
  timestamp,
}, { title: 'output', description: 'Assistant text (source assistant) and tool console output (source tool) as it streams' })

export const ToolCallEvent = Type.Object({
  tool: Type.String(),
  call_id: Type.String(),
  args: Type.Record(Type.String(), Type.Unknown()),
  timestamp,
}, { title: 'tool_call', description: 'The agent invoked a tool' })

export const ToolResultEvent = Type.Object({
  tool: Type.String(),
  call_id: Type.String(),
  status: Type.Union([Type.Literal('completed'), Type.Literal('error')]),
  result: Type.Object({
    output: Type.String(),
    title: Type.Optional(Type.String()),
    metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    error: Type.Optional(Type.String()),
  }),
  duration_ms: Type.Integer({ minimum: 0 }),
  timestamp,
}, { title: 'tool_result', description: 'A tool call finished' })

export const StatusEvent = Type.Object({
  status: Type.Union(SESSION_STATES.map(s => Type.Literal(s))),
  progress: Type.Integer({ minimum: 0, maximum: 100 }),
  message: Type.Optional(Type.String()),
  timestamp,
}, { title: 'status', description: 'Every state change and progress change; `cancelled` is terminal' })

export const ErrorEvent = Type.Object({
  error: Type.String(),
  code: Type.String(),
  fatal: Type.Boolean(),
  retry_after: Type.Optional(Type.Number({ minimum: 0, description: 'Seconds until the engine retries the provider' })),
  timestamp,
}, { title: 'error', description: 'Non-fatal (provider retries, with retry_after) or fatal (terminal: auth failure, engine crash, timeout, shutdown)' })

export const CompleteEvent = Type.Object({
  final_message: Type.String(),
  files_modified: Type.Array(Type.String(), { description: 'Paths relative to WORKSPACE_DIR' }),
  usage: Type.Optional(Type.Object({ input_tokens: Type.Integer(), output_tokens: Type.Integer() })),
  duration_ms: Type.Integer({ minimum: 0 }),
  timestamp,
}, { title: 'complete', description: 'The session completed (terminal)' })

export const HeartbeatEvent = Type.Object({}, { title: 'heartbeat', description: 'Sent every HEARTBEAT_INTERVAL seconds, without an id' })

export const EVENT_SCHEMAS = {
  output: OutputEvent,
  tool_call: ToolCallEvent,
  tool_result: ToolResultEvent,
  status: StatusEvent,
  error: ErrorEvent,
  complete: CompleteEvent,
  heartbeat: HeartbeatEvent,
}
