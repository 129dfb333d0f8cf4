import { Type, type Static, type TSchema } from '@sinclair/typebox'

export const PROVIDERS = ['openai', 'anthropic', 'google', 'openai-compatible'] as const
export type Provider = typeof PROVIDERS[number]

export const TOOL_NAMES = ['read', 'write', 'edit', 'bash', 'glob', 'grep', 'list', 'webfetch', 'todowrite', 'todoread', 'task', 'patch'] as const
export type ToolName = typeof TOOL_NAMES[number]

export const SESSION_STATES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const
export type SessionState = typeof SESSION_STATES[number]

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
export const MAX_PROMPT_CHARS = 200_000
export const MAX_SYSTEM_PROMPT_CHARS = 100_000
export const MAX_OUTPUT_TOKENS = 1_000_000

/**
 * `schema` or `null` in a response, as OpenAPI 3.0 spells it (`nullable: true`). fast-json-stringify
 * serializes it directly, where an `anyOf` with `null` made it validate the value against every
 * branch on every response (the status route spent most of its time there).
 */
export const OrNull = <T extends TSchema>(schema: T) => Type.Unsafe<Static<T> | null>({ ...schema, nullable: true })

/** One of a set of strings, as a plain `enum` (an `anyOf` of literals costs a validation per branch when serialized). */
export const OneOf = <const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options })

/** `null` for an optional field means absent. (Request bodies keep TypeBox's union: `Value.Check` understands it.) */
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]))

export const SessionId = Type.String({
  pattern: UUID_PATTERN,
  description: 'UUID (any version) in canonical 8-4-4-4-12 hex form',
  examples: ['550e8400-e29b-41d4-a716-446655440000'],
})

export const ModelConfig = Type.Object({
  provider: Type.Union(PROVIDERS.map(p => Type.Literal(p)), { description: 'Model provider; `openai-compatible` needs `api_endpoint`' }),
  model: Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\s\\u0000-\\u001f]+$', description: 'Model id as the provider knows it (ids the engine\'s catalog does not know work too)', examples: ['gpt-4o-mini'] }),
  api_key: Type.String({ minLength: 1, maxLength: 4096, pattern: '^[^\\u0000-\\u001f\\u007f]+$', description: 'The user\'s provider key; kept in the sidecar\'s memory only, never returned or logged', examples: ['sk-...'] }),
  temperature: Type.Number({ minimum: 0, maximum: 2 }),
  max_tokens: Type.Integer({ minimum: 1, maximum: MAX_OUTPUT_TOKENS, description: 'Maximum output tokens per model response' }),
  enabled_tools: Type.Array(Type.Union(TOOL_NAMES.map(t => Type.Literal(t))), {
    uniqueItems: true,
    maxItems: TOOL_NAMES.length,
    description: 'Tools the agent may use; any other tool is neither offered to the model nor executable',
    examples: [['read', 'write', 'edit', 'bash']],
  }),
  model_version: Nullable(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$', description: 'Provider API version: `anthropic-version` header (anthropic), API path version such as `v1beta` (google), `api-version` query parameter (openai, openai-compatible, e.g. Azure)' })),
  api_endpoint: Nullable(Type.String({ minLength: 1, maxLength: 2048, description: 'Absolute http(s) base URL of the provider API, without credentials; required for `openai-compatible`', examples: ['https://api.openai.com/v1'] })),
}, { additionalProperties: false })
export type ModelConfigType = Static<typeof ModelConfig>

export const CreateSessionBody = Type.Object({
  session_id: SessionId,
  prompt: Type.String({ minLength: 1, maxLength: MAX_PROMPT_CHARS, pattern: '\\S', description: 'The task for the agent (non-empty after trimming)' }),
  model_config: ModelConfig,
  system_prompt: Nullable(Type.String({ maxLength: MAX_SYSTEM_PROMPT_CHARS, description: 'Added to the agent\'s instructions for this session' })),
}, { additionalProperties: false, title: 'CreateSession' })
export type CreateSessionBodyType = Static<typeof CreateSessionBody>

export const SessionParams = Type.Object({ sessionId: SessionId })
export type SessionParamsType = Static<typeof SessionParams>

const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339 UTC with milliseconds' })
const NullableTimestamp = OrNull(Timestamp)

export const SessionErrorInfo = Type.Object({
  code: Type.String({ description: 'e.g. timeout, provider_auth, provider_error, engine_crashed, interrupted, shutdown' }),
  message: Type.String(),
})

export const Usage = Type.Object({
  input_tokens: Type.Integer({ minimum: 0 }),
  output_tokens: Type.Integer({ minimum: 0 }),
})

export const SessionStatus = Type.Object({
  session_id: Type.String(),
  status: OneOf(SESSION_STATES),
  progress: Type.Integer({ minimum: 0, maximum: 100 }),
  created_at: Timestamp,
  started_at: NullableTimestamp,
  updated_at: Timestamp,
  finished_at: NullableTimestamp,
  cancelled_at: NullableTimestamp,
  model: Type.Object({ provider: Type.String(), model: Type.String() }),
  last_event_id: Type.Integer({ minimum: 0, description: 'Id of the newest event in the session\'s stream (0: none yet)' }),
  final_message: OrNull(Type.String()),
  files_modified: Type.Array(Type.String(), { description: 'Paths relative to WORKSPACE_DIR' }),
  error: OrNull(SessionErrorInfo),
  usage: OrNull(Usage),
  stream_url: Type.String(),
}, { title: 'SessionStatus' })
export type SessionStatusType = Static<typeof SessionStatus>

export const CancelBody = Type.Object({
  session_id: Type.String(),
  status: Type.Literal('cancelled'),
  cancelled_at: Timestamp,
}, { title: 'Cancelled' })
export type CancelBodyType = Static<typeof CancelBody>

export const StreamQuery = Type.Object({
  last_event_id: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'Resume after this event id (the Last-Event-ID header wins)' })),
})
export type StreamQueryType = Static<typeof StreamQuery>

export const StreamHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ description: 'Resume after this event id (sent by EventSource on reconnect)' })),
})
