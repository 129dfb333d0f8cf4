// A scripted model server for end-to-end tests: speaks the wire formats the
// engine's AI SDK providers use (OpenAI Chat Completions, OpenAI Responses,
// Anthropic Messages, Google Generative Language), streaming SSE like the real
// services, so the REAL engine can be driven through text, tool calls and
// failures on loopback only.
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export type WireFormat = 'chat' | 'responses' | 'anthropic' | 'google'

export interface RecordedRequest {
  method: string
  path: string
  query: Record<string, string>
  headers: Record<string, string>
  body: unknown
  format: WireFormat | 'unknown'
  stream: boolean
  model: string | undefined
  apiKey: string | undefined
  temperature: number | undefined
  maxTokens: number | undefined
  toolNames: string[]
  system: string
  lastUserText: string
  /** Every user text of the conversation, oldest first. */
  userTexts: string[]
  /** Assistant turns already in the conversation (a turn = one model reply, text and tool calls together). */
  assistantTurns: number
  /** Tool results already in the conversation. */
  toolResults: number
  /** The engine's `x-session-id` header, when sent. */
  sessionId: string | undefined
  /** Date.now() when the request arrived. */
  receivedAt: number
}

export interface ToolCall {
  name: string
  args: Record<string, unknown>
  id?: string
}

export interface Usage {
  inputTokens: number
  outputTokens: number
}

export interface Reply {
  text?: string
  toolCalls?: ToolCall[]
  usage?: Usage
  /** Defaults to 'stop', or 'tool_calls' when the reply has tool calls. */
  finish?: 'stop' | 'tool_calls' | 'length'
  /** Fail with this HTTP status and the provider's error body. */
  error?: number
  /** Seconds, sent as `retry-after` with an error. */
  retryAfter?: number
  errorMessage?: string
  /** Never answer (not even headers) until the server closes. */
  hang?: boolean
  /** Send this many stream chunks, then destroy the connection. */
  dropAfterChunks?: number
  /** Pause between stream chunks, in ms. */
  chunkDelayMs?: number
}

export type Handler = (request: RecordedRequest) => Reply | Promise<Reply>

export interface ModelServer {
  url: string
  requests: RecordedRequest[]
  setHandler: (handler: Handler) => void
  close: () => Promise<void>
}

const defaultUsage: Usage = { inputTokens: 10, outputTokens: 5 }

/**
 * Plays `turns` in order, choosing the turn from the number of assistant turns
 * already in the request's conversation: stateless, so concurrent sessions
 * each get their own progression. Past the end, the last turn repeats.
 */
export function scenario (turns: Array<Reply | Handler>): Handler {
  if (turns.length === 0) throw new Error('scenario needs at least one turn')
  return async (request) => {
    const turn = turns[Math.min(request.assistantTurns, turns.length - 1)]
    return typeof turn === 'function' ? await turn(request) : turn
  }
}

/**
 * Answers repeated requests for the same conversation state (the engine's
 * retries) with `replies` in order, the last one repeating: e.g.
 * `attempts([{ error: 429, retryAfter: 1 }, { text: 'ok' }])` fails once.
 */
export function attempts (replies: Reply[]): Handler {
  if (replies.length === 0) throw new Error('attempts needs at least one reply')
  const seen = new Map<string, number>()
  return (request) => {
    const key = [request.sessionId ?? request.userTexts[0], request.assistantTurns, request.toolResults].join('|')
    const count = seen.get(key) ?? 0
    seen.set(key, count + 1)
    return replies[Math.min(count, replies.length - 1)]
  }
}

/**
 * Chooses a handler by a keyword found in the conversation's first user text,
 * so one server serves several concurrent sessions with different scripts.
 */
export function byMarker (handlers: Record<string, Handler>, fallback?: Handler): Handler {
  return (request) => {
    const text = request.userTexts[0] ?? request.lastUserText
    for (const [marker, handler] of Object.entries(handlers)) {
      if (text.includes(marker)) return handler(request)
    }
    if (fallback !== undefined) return fallback(request)
    return { error: 500, errorMessage: `no scenario for prompt: ${text.slice(0, 80)}` }
  }
}

export async function startModelServer (): Promise<ModelServer> {
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  let handler: Handler = () => ({ text: 'ok' })

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { message: String(err) } }))
      } else {
        res.destroy()
      }
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req)
    const recorded = record(req, raw)
    requests.push(recorded)
    if (recorded.format === 'unknown') {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: `no route ${recorded.method} ${recorded.path}` } }))
      return
    }
    const reply = await handler(recorded)
    await respond(res, recorded, reply)
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setHandler (next) { handler = next },
    async close () {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      await closed
    },
  }
}

async function readBody (req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

// ---------------------------------------------------------------------------
// Request recording and normalization

type Json = Record<string, unknown>

function isObject (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function asArray (value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

function asString (value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

function asNumber (value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined
}

/** Text of a content that is a string or a list of parts carrying `text`. */
function textOf (content: unknown, partTypes: string[]): string {
  if (typeof content === 'string') return content
  return asArray(content)
    .filter((part): part is Json => isObject(part) && (part.type === undefined || partTypes.includes(String(part.type))))
    .map((part) => asString(part.text) ?? '')
    .join('')
}

interface Conversation {
  system: string[]
  userTexts: string[]
  assistantTurns: number
  toolResults: number
  toolNames: string[]
}

function formatOf (method: string, path: string): { format: WireFormat | 'unknown', model?: string, stream?: boolean } {
  if (method !== 'POST') return { format: 'unknown' }
  if (path.endsWith('/chat/completions')) return { format: 'chat' }
  if (path.endsWith('/responses')) return { format: 'responses' }
  if (path.endsWith('/messages')) return { format: 'anthropic' }
  const google = /\/models\/([^/:]+):(streamGenerateContent|generateContent)$/.exec(path)
  if (google !== null) return { format: 'google', model: google[1], stream: google[2] === 'streamGenerateContent' }
  return { format: 'unknown' }
}

function record (req: IncomingMessage, raw: string): RecordedRequest {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value
  }
  let body: unknown = raw
  try { body = raw === '' ? undefined : JSON.parse(raw) } catch { /* keep the raw text */ }
  const b: Json = isObject(body) ? body : {}
  const method = req.method ?? 'GET'
  const route = formatOf(method, url.pathname)
  const bearer = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '')
  const apiKey = bearer?.[1] ?? headers['x-api-key'] ?? headers['x-goog-api-key'] ?? url.searchParams.get('key') ?? undefined

  let conversation: Conversation = { system: [], userTexts: [], assistantTurns: 0, toolResults: 0, toolNames: [] }
  let model = asString(b.model)
  let temperature = asNumber(b.temperature)
  let maxTokens: number | undefined
  let stream = b.stream === true
  switch (route.format) {
    case 'chat':
      conversation = chatConversation(b)
      maxTokens = asNumber(b.max_completion_tokens) ?? asNumber(b.max_tokens)
      break
    case 'responses':
      conversation = responsesConversation(b)
      maxTokens = asNumber(b.max_output_tokens)
      break
    case 'anthropic':
      conversation = anthropicConversation(b)
      maxTokens = asNumber(b.max_tokens)
      break
    case 'google': {
      conversation = googleConversation(b)
      const config = isObject(b.generationConfig) ? b.generationConfig : {}
      temperature = asNumber(config.temperature)
      maxTokens = asNumber(config.maxOutputTokens)
      model = route.model
      stream = route.stream === true
      break
    }
  }

  return {
    method,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers,
    body,
    format: route.format,
    stream,
    model,
    apiKey,
    temperature,
    maxTokens,
    toolNames: conversation.toolNames,
    system: conversation.system.join('\n'),
    lastUserText: conversation.userTexts.at(-1) ?? '',
    userTexts: conversation.userTexts,
    assistantTurns: conversation.assistantTurns,
    toolResults: conversation.toolResults,
    sessionId: headers['x-session-id'],
    receivedAt: Date.now(),
  }
}

function chatConversation (b: Json): Conversation {
  const c: Conversation = { system: [], userTexts: [], assistantTurns: 0, toolResults: 0, toolNames: [] }
  for (const message of asArray(b.messages)) {
    if (!isObject(message)) continue
    const text = textOf(message.content, ['text'])
    if (message.role === 'system' || message.role === 'developer') c.system.push(text)
    else if (message.role === 'user' && text !== '') c.userTexts.push(text)
    else if (message.role === 'assistant') c.assistantTurns++
    else if (message.role === 'tool') c.toolResults++
  }
  for (const tool of asArray(b.tools)) {
    if (isObject(tool) && isObject(tool.function)) c.toolNames.push(String(tool.function.name))
  }
  return c
}

function responsesConversation (b: Json): Conversation {
  const c: Conversation = { system: [], userTexts: [], assistantTurns: 0, toolResults: 0, toolNames: [] }
  const instructions = asString(b.instructions)
  if (instructions !== undefined) c.system.push(instructions)
  const input = typeof b.input === 'string' ? [{ role: 'user', content: b.input }] : asArray(b.input)
  // One assistant reply becomes several consecutive items (message, function_call, reasoning…).
  let inAssistant = false
  for (const item of input) {
    if (!isObject(item)) continue
    const assistantItem = item.role === 'assistant' || ['function_call', 'reasoning', 'item_reference'].includes(String(item.type))
    if (assistantItem && !inAssistant) c.assistantTurns++
    inAssistant = assistantItem
    if (item.type === 'function_call_output') c.toolResults++
    const text = textOf(item.content, ['input_text', 'text'])
    if (item.role === 'system' || item.role === 'developer') c.system.push(text)
    else if (item.role === 'user' && text !== '') c.userTexts.push(text)
  }
  for (const tool of asArray(b.tools)) {
    if (isObject(tool) && typeof tool.name === 'string') c.toolNames.push(tool.name)
  }
  return c
}

function anthropicConversation (b: Json): Conversation {
  const c: Conversation = { system: [], userTexts: [], assistantTurns: 0, toolResults: 0, toolNames: [] }
  const system = textOf(b.system, ['text'])
  if (system !== '') c.system.push(system)
  for (const message of asArray(b.messages)) {
    if (!isObject(message)) continue
    if (message.role === 'assistant') c.assistantTurns++
    if (message.role !== 'user') continue
    c.toolResults += asArray(message.content).filter((part) => isObject(part) && part.type === 'tool_result').length
    const text = textOf(message.content, ['text'])
    if (text !== '') c.userTexts.push(text)
  }
  for (const tool of asArray(b.tools)) {
    if (isObject(tool) && typeof tool.name === 'string') c.toolNames.push(tool.name)
  }
  return c
}

function googleConversation (b: Json): Conversation {
  const c: Conversation = { system: [], userTexts: [], assistantTurns: 0, toolResults: 0, toolNames: [] }
  const instruction = b.systemInstruction
  if (isObject(instruction)) c.system.push(textOf(instruction.parts, ['text']))
  for (const content of asArray(b.contents)) {
    if (!isObject(content)) continue
    const parts = asArray(content.parts).filter(isObject)
    if (content.role === 'model') {
      c.assistantTurns++
      continue
    }
    c.toolResults += parts.filter((part) => part.functionResponse !== undefined).length
    const text = parts.map((part) => asString(part.text) ?? '').join('')
    if (text !== '') c.userTexts.push(text)
  }
  for (const tool of asArray(b.tools)) {
    if (!isObject(tool)) continue
    for (const declaration of asArray(tool.functionDeclarations)) {
      if (isObject(declaration) && typeof declaration.name === 'string') c.toolNames.push(declaration.name)
    }
  }
  return c
}

// ---------------------------------------------------------------------------
// Replies

interface Frame {
  event?: string
  data: unknown
}

let idCounter = 0
const nextId = (prefix: string): string => `${prefix}${Date.now().toString(36)}${(++idCounter).toString(36)}`

async function respond (res: ServerResponse, request: RecordedRequest, reply: Reply): Promise<void> {
  if (reply.hang === true) return // the socket is destroyed by close()
  if (reply.error !== undefined) {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (reply.retryAfter !== undefined) headers['retry-after'] = String(reply.retryAfter)
    res.writeHead(reply.error, headers)
    res.end(JSON.stringify(errorBody(request.format, reply.error, reply.errorMessage)))
    return
  }
  const plan = normalize(reply)
  if (!request.stream) {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(completeBody(request, plan)))
    return
  }
  const frames = streamFrames(request, plan)
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  const limit = reply.dropAfterChunks ?? frames.length
  for (const frame of frames.slice(0, limit)) {
    if (res.destroyed) return
    const data = typeof frame.data === 'string' ? frame.data : JSON.stringify(frame.data)
    await write(res, (frame.event === undefined ? '' : `event: ${frame.event}\n`) + `data: ${data}\n\n`)
    if (reply.chunkDelayMs !== undefined && reply.chunkDelayMs > 0) await pause(res, reply.chunkDelayMs)
  }
  if (reply.dropAfterChunks === undefined) {
    res.end()
    return
  }
  // Let the client read what was sent, then cut the connection without a proper end.
  await pause(res, 50)
  res.socket?.destroy()
}

/** Waits, but no longer than the connection lives, so close() leaves no timer behind. */
async function pause (res: ServerResponse, ms: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      res.off('close', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    res.once('close', done)
  })
}

async function write (res: ServerResponse, chunk: string): Promise<void> {
  await new Promise<void>((resolve) => res.write(chunk, () => resolve()))
}

interface Plan {
  textChunks: string[]
  text: string
  toolCalls: Array<Required<ToolCall>>
  usage: Usage
  finish: 'stop' | 'tool_calls' | 'length'
}

function normalize (reply: Reply): Plan {
  const text = reply.text ?? ''
  const toolCalls = (reply.toolCalls ?? []).map((call) => ({ ...call, id: call.id ?? nextId('call_') }))
  return {
    text,
    // Several deltas, so streaming is visible: split after each word.
    textChunks: text === '' ? [] : text.match(/\S+\s*|\s+/g) ?? [text],
    toolCalls,
    usage: reply.usage ?? defaultUsage,
    finish: reply.finish ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop'),
  }
}

function errorBody (format: WireFormat | 'unknown', status: number, message?: string): unknown {
  const text = message ?? (status === 401 ? 'Incorrect API key provided' : status === 429 ? 'Rate limit exceeded' : 'Internal server error')
  switch (format) {
    case 'anthropic': {
      const type = status === 401 ? 'authentication_error' : status === 429 ? 'rate_limit_error' : status === 529 ? 'overloaded_error' : 'api_error'
      return { type: 'error', error: { type, message: text } }
    }
    case 'google': {
      const googleStatus = status === 401 ? 'UNAUTHENTICATED' : status === 429 ? 'RESOURCE_EXHAUSTED' : 'INTERNAL'
      return { error: { code: status, message: text, status: googleStatus } }
    }
    default: {
      const type = status === 401 ? 'invalid_request_error' : status === 429 ? 'rate_limit_exceeded' : 'server_error'
      const code = status === 401 ? 'invalid_api_key' : status === 429 ? 'rate_limit_exceeded' : null
      return { error: { message: text, type, param: null, code } }
    }
  }
}

function streamFrames (request: RecordedRequest, plan: Plan): Frame[] {
  switch (request.format) {
    case 'chat': return chatFrames(request, plan)
    case 'responses': return responsesFrames(request, plan)
    case 'anthropic': return anthropicFrames(request, plan)
    default: return googleFrames(request, plan)
  }
}

function completeBody (request: RecordedRequest, plan: Plan): unknown {
  switch (request.format) {
    case 'chat': return chatComplete(request, plan)
    case 'responses': return responsesComplete(request, plan)
    case 'anthropic': return anthropicComplete(request, plan)
    default: return googleComplete(request, plan)
  }
}

// OpenAI Chat Completions ----------------------------------------------------

function chatUsage (usage: Usage): Json {
  return { prompt_tokens: usage.inputTokens, completion_tokens: usage.outputTokens, total_tokens: usage.inputTokens + usage.outputTokens }
}

function chatFrames (request: RecordedRequest, plan: Plan): Frame[] {
  const id = nextId('chatcmpl-')
  const created = Math.floor(Date.now() / 1000)
  const chunk = (delta: Json, finish: string | null = null): Frame => ({
    data: { id, object: 'chat.completion.chunk', created, model: request.model, choices: [{ index: 0, delta, finish_reason: finish }] },
  })
  const frames: Frame[] = [chunk({ role: 'assistant', content: '' })]
  for (const text of plan.textChunks) frames.push(chunk({ content: text }))
  plan.toolCalls.forEach((call, index) => {
    frames.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }))
    frames.push(chunk({ tool_calls: [{ index, function: { arguments: JSON.stringify(call.args) } }] }))
  })
  frames.push(chunk({}, plan.finish))
  frames.push({ data: { id, object: 'chat.completion.chunk', created, model: request.model, choices: [], usage: chatUsage(plan.usage) } })
  frames.push({ data: '[DONE]' })
  return frames
}

function chatComplete (request: RecordedRequest, plan: Plan): unknown {
  const message: Json = { role: 'assistant', content: plan.text === '' ? null : plan.text }
  if (plan.toolCalls.length > 0) {
    message.tool_calls = plan.toolCalls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: JSON.stringify(call.args) } }))
  }
  return {
    id: nextId('chatcmpl-'),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: request.model,
    choices: [{ index: 0, message, finish_reason: plan.finish }],
    usage: chatUsage(plan.usage),
  }
}

// OpenAI Responses -----------------------------------------------------------

function responsesUsage (usage: Usage): Json {
  return {
    input_tokens: usage.inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: usage.outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.inputTokens + usage.outputTokens,
  }
}

function responsesOutput (plan: Plan, messageId: string): Json[] {
  const output: Json[] = []
  if (plan.text !== '') {
    output.push({
      type: 'message',
      id: messageId,
      status: 'completed',
      role: 'assistant',
      content: [{ type: 'output_text', text: plan.text, annotations: [] }],
    })
  }
  for (const call of plan.toolCalls) {
    output.push({ type: 'function_call', id: `fc_${call.id}`, call_id: call.id, name: call.name, arguments: JSON.stringify(call.args), status: 'completed' })
  }
  return output
}

function responsesEnvelope (request: RecordedRequest, id: string, status: string, plan: Plan, output: Json[], usage: Json | null): Json {
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    model: request.model,
    output,
    incomplete_details: plan.finish === 'length' && status !== 'in_progress' ? { reason: 'max_output_tokens' } : null,
    usage,
  }
}

function responsesFrames (request: RecordedRequest, plan: Plan): Frame[] {
  const id = nextId('resp_')
  const messageId = nextId('msg_')
  const frames: Frame[] = []
  let sequence = 0
  const push = (type: string, data: Json): void => { frames.push({ event: type, data: { type, sequence_number: sequence++, ...data } }) }
  const output = responsesOutput(plan, messageId)
  push('response.created', { response: responsesEnvelope(request, id, 'in_progress', plan, [], null) })
  push('response.in_progress', { response: responsesEnvelope(request, id, 'in_progress', plan, [], null) })
  let index = 0
  if (plan.text !== '') {
    push('response.output_item.added', { output_index: index, item: { type: 'message', id: messageId, status: 'in_progress', role: 'assistant', content: [] } })
    push('response.content_part.added', { item_id: messageId, output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } })
    for (const delta of plan.textChunks) {
      push('response.output_text.delta', { item_id: messageId, output_index: index, content_index: 0, delta, logprobs: [] })
    }
    push('response.output_text.done', { item_id: messageId, output_index: index, content_index: 0, text: plan.text, logprobs: [] })
    push('response.content_part.done', { item_id: messageId, output_index: index, content_index: 0, part: { type: 'output_text', text: plan.text, annotations: [] } })
    push('response.output_item.done', { output_index: index, item: output[index] })
    index++
  }
  for (const call of plan.toolCalls) {
    const itemId = `fc_${call.id}`
    const args = JSON.stringify(call.args)
    push('response.output_item.added', { output_index: index, item: { type: 'function_call', id: itemId, call_id: call.id, name: call.name, arguments: '', status: 'in_progress' } })
    push('response.function_call_arguments.delta', { item_id: itemId, output_index: index, delta: args })
    push('response.function_call_arguments.done', { item_id: itemId, output_index: index, arguments: args })
    push('response.output_item.done', { output_index: index, item: output[index] })
    index++
  }
  const status = plan.finish === 'length' ? 'incomplete' : 'completed'
  push(`response.${status}`, { response: responsesEnvelope(request, id, status, plan, output, responsesUsage(plan.usage)) })
  return frames
}

function responsesComplete (request: RecordedRequest, plan: Plan): unknown {
  const status = plan.finish === 'length' ? 'incomplete' : 'completed'
  return responsesEnvelope(request, nextId('resp_'), status, plan, responsesOutput(plan, nextId('msg_')), responsesUsage(plan.usage))
}

// Anthropic Messages ---------------------------------------------------------

const anthropicStop = (finish: Plan['finish']): string => finish === 'tool_calls' ? 'tool_use' : finish === 'length' ? 'max_tokens' : 'end_turn'

function anthropicFrames (request: RecordedRequest, plan: Plan): Frame[] {
  const frames: Frame[] = []
  const push = (type: string, data: Json): void => { frames.push({ event: type, data: { type, ...data } }) }
  push('message_start', {
    message: {
      id: nextId('msg_'),
      type: 'message',
      role: 'assistant',
      model: request.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: plan.usage.inputTokens, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    },
  })
  let index = 0
  if (plan.text !== '') {
    push('content_block_start', { index, content_block: { type: 'text', text: '' } })
    for (const text of plan.textChunks) push('content_block_delta', { index, delta: { type: 'text_delta', text } })
    push('content_block_stop', { index })
    index++
  }
  for (const call of plan.toolCalls) {
    push('content_block_start', { index, content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} } })
    push('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(call.args) } })
    push('content_block_stop', { index })
    index++
  }
  push('message_delta', { delta: { stop_reason: anthropicStop(plan.finish), stop_sequence: null }, usage: { output_tokens: plan.usage.outputTokens } })
  push('message_stop', {})
  return frames
}

function anthropicComplete (request: RecordedRequest, plan: Plan): unknown {
  const content: Json[] = []
  if (plan.text !== '') content.push({ type: 'text', text: plan.text })
  for (const call of plan.toolCalls) content.push({ type: 'tool_use', id: call.id, name: call.name, input: call.args })
  return {
    id: nextId('msg_'),
    type: 'message',
    role: 'assistant',
    model: request.model,
    content,
    stop_reason: anthropicStop(plan.finish),
    stop_sequence: null,
    usage: { input_tokens: plan.usage.inputTokens, output_tokens: plan.usage.outputTokens },
  }
}

// Google Generative Language -------------------------------------------------

function googleUsage (usage: Usage): Json {
  return { promptTokenCount: usage.inputTokens, candidatesTokenCount: usage.outputTokens, totalTokenCount: usage.inputTokens + usage.outputTokens }
}

const googleFinish = (finish: Plan['finish']): string => finish === 'length' ? 'MAX_TOKENS' : 'STOP'

function googleFrames (request: RecordedRequest, plan: Plan): Frame[] {
  const frames: Frame[] = []
  const candidate = (parts: Json[], finish?: string): Frame => ({
    data: {
      candidates: [{ content: { role: 'model', parts }, index: 0, ...(finish === undefined ? {} : { finishReason: finish }) }],
      usageMetadata: googleUsage(plan.usage),
      modelVersion: request.model,
    },
  })
  for (const text of plan.textChunks) frames.push(candidate([{ text }]))
  const calls = plan.toolCalls.map((call) => ({ functionCall: { name: call.name, args: call.args } }))
  // Google sends the finish reason with the last content chunk.
  frames.push(candidate(calls, googleFinish(plan.finish)))
  return frames
}

function googleComplete (request: RecordedRequest, plan: Plan): unknown {
  const parts: Json[] = []
  if (plan.text !== '') parts.push({ text: plan.text })
  for (const call of plan.toolCalls) parts.push({ functionCall: { name: call.name, args: call.args } })
  return {
    candidates: [{ content: { role: 'model', parts }, finishReason: googleFinish(plan.finish), index: 0 }],
    usageMetadata: googleUsage(plan.usage),
    modelVersion: request.model,
  }
}
