import { randomUUID } from 'node:crypto'

/** One contract check against a running deployment. */
export interface CheckResult { name: string, ok: boolean, detail?: string }

export interface ConformanceOptions {
  url: string
  secret?: string
  /** An OpenAI-compatible endpoint reachable FROM THE SIDECAR; enables the full-session check. */
  modelEndpoint?: string
  model?: string
  apiKey?: string
  prompt?: string
  timeoutMs?: number
}

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const OPERATIONS = ['DELETE /sessions/{sessionId}', 'GET /health', 'GET /healthz', 'GET /ready', 'GET /sessions/{sessionId}/status', 'GET /sessions/{sessionId}/stream', 'POST /sessions']

class CheckFailed extends Error {}

function expect (condition: unknown, message: string): asserts condition {
  if (!condition) throw new CheckFailed(message)
}

async function json (res: Response): Promise<Record<string, unknown>> {
  const text = await res.text()
  try {
    return JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new CheckFailed(`body is not JSON: ${text.slice(0, 120)}`)
  }
}

async function errorShape (res: Response, status: number): Promise<Record<string, unknown>> {
  expect(res.status === status, `status ${res.status}, expected ${status}`)
  expect(/^application\/json/.test(res.headers.get('content-type') ?? ''), `content-type ${res.headers.get('content-type')}`)
  const body = await json(res)
  expect(typeof body.error === 'string' && body.error.length > 0, 'no "error" message')
  expect(typeof body.timestamp === 'string' && ISO_MS.test(body.timestamp), 'no RFC 3339 "timestamp" with milliseconds')
  const extra = Object.keys(body).filter(k => !['error', 'details', 'timestamp'].includes(k))
  expect(extra.length === 0, `unexpected keys ${extra.join(', ')}`)
  return body
}

export interface SseEvent { id?: number, event: string, data: Record<string, unknown> }

/** A whole SSE body as events (`data` parsed as JSON); comments and `retry:` lines are skipped. */
export function parseSse (text: string): SseEvent[] {
  return text.split('\n\n').flatMap(block => {
    let event = 'message'
    let id: number | undefined
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7)
      else if (line.startsWith('id: ')) id = Number(line.slice(4))
      else if (line.startsWith('data: ')) data.push(line.slice(6))
    }
    return data.length ? [{ id, event, data: JSON.parse(data.join('\n')) as Record<string, unknown> }] : []
  })
}

/** Runs every check in order; never throws. */
export async function runConformance (opts: ConformanceOptions): Promise<CheckResult[]> {
  const base = opts.url.replace(/\/+$/, '')
  const auth: Record<string, string> = opts.secret ? { authorization: `Bearer ${opts.secret}` } : {}
  const timeout = opts.timeoutMs ?? 10_000
  const get = (path: string, headers: Record<string, string> = {}) => fetch(base + path, { headers, signal: AbortSignal.timeout(timeout) })
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(base + path, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers }, signal: AbortSignal.timeout(timeout) })
  const unknownId = randomUUID()
  const results: CheckResult[] = []
  const check = async (name: string, fn: () => Promise<string | void>) => {
    try {
      const detail = await fn()
      results.push({ name, ok: true, ...(detail ? { detail } : {}) })
    } catch (err) {
      results.push({ name, ok: false, detail: err instanceof Error ? err.message : String(err) })
    }
  }

  await check('GET /healthz → 200 {"status":"ok"}', async () => {
    for (const path of ['/healthz', '/health']) {
      const res = await get(path)
      expect(res.status === 200, `${path}: status ${res.status}`)
      const body = await json(res)
      expect(body.status === 'ok' && Object.keys(body).length === 1, `${path}: body ${JSON.stringify(body)}`)
    }
  })
  await check('GET /ready → 200 ready, or 503 with a reason', async () => {
    const res = await get('/ready')
    const body = await json(res)
    if (res.status === 200) expect(body.status === 'ready', `body ${JSON.stringify(body)}`)
    else {
      expect(res.status === 503, `status ${res.status}`)
      expect(body.status === 'not ready' && typeof body.error === 'string', `body ${JSON.stringify(body)}`)
      return `not ready: ${String(body.error)}`
    }
  })
  await check('unknown route → 404 error shape', async () => { await errorShape(await get(`/no-such-route-${unknownId}`), 404) })
  await check('OpenAPI document lists the seven operations', async () => {
    const doc = await json(await get('/openapi.json'))
    const paths = (doc.paths ?? {}) as Record<string, Record<string, unknown>>
    const ops = Object.entries(paths).flatMap(([p, o]) => Object.keys(o).map(m => `${m.toUpperCase()} ${p}`)).sort()
    expect(JSON.stringify(ops) === JSON.stringify(OPERATIONS), `operations: ${ops.join(', ')}`)
  })
  await check('Swagger UI at /docs', async () => {
    const res = await fetch(`${base}/docs/`, { signal: AbortSignal.timeout(timeout) })
    expect(res.status === 200 && /swagger/i.test(await res.text()), `status ${res.status}`)
  })
  if (opts.secret) {
    await check('auth: no token / wrong token → 401 with WWW-Authenticate: Bearer', async () => {
      for (const headers of [{}, { authorization: 'Bearer wrong-token' }] as Array<Record<string, string>>) {
        const res = await get(`/sessions/${unknownId}/status`, headers)
        await errorShape(res, 401)
        expect(res.headers.get('www-authenticate') === 'Bearer', 'missing WWW-Authenticate: Bearer')
      }
      await errorShape(await post('/sessions', '{}'), 401)
    })
  } else {
    await check('auth: session routes answer without a token', async () => {
      const res = await get(`/sessions/${unknownId}/status`)
      expect(res.status !== 401, 'the deployment requires a token: pass --secret')
    })
  }
  await check('validation: 400 naming the field (nested as a JSON path)', async () => {
    const body = await errorShape(await post('/sessions', JSON.stringify({
      session_id: randomUUID(),
      prompt: 'x',
      model_config: { provider: 'openai', model: 'm', api_key: 'k', temperature: 9, max_tokens: 1, enabled_tools: [] },
    }), auth), 400)
    const details = body.details as Record<string, unknown> | undefined
    expect(details?.field === 'model_config.temperature', `details ${JSON.stringify(details)}`)
  })
  await check('unknown field → 400', async () => { await errorShape(await post('/sessions', JSON.stringify({ sesion_id: 'typo' }), auth), 400) })
  await check('malformed JSON → 400', async () => { await errorShape(await post('/sessions', '{"session_id":', auth), 400) })
  await check('not JSON → 415', async () => { await errorShape(await post('/sessions', 'hello', { ...auth, 'content-type': 'text/plain' }), 415) })
  await check('unknown session → 404; bad id → 400', async () => {
    await errorShape(await get(`/sessions/${unknownId}/status`, auth), 404)
    await errorShape(await fetch(`${base}/sessions/${unknownId}`, { method: 'DELETE', headers: auth }), 404)
    await errorShape(await get('/sessions/not-a-uuid/status', auth), 400)
  })
  await check('stream refuses Accept without text/event-stream → 406', async () => {
    await errorShape(await get(`/sessions/${unknownId}/stream`, { ...auth, accept: 'application/json' }), 406)
  })

  if (opts.modelEndpoint) {
    await check('full session: 201, stream to a terminal event, ids 1..n, status agrees, replay after Last-Event-ID', async () => {
      const sessionId = randomUUID()
      const res = await post('/sessions', JSON.stringify({
        session_id: sessionId,
        prompt: opts.prompt ?? 'Reply with a short greeting.',
        model_config: {
          provider: 'openai-compatible',
          model: opts.model ?? 'conformance-model',
          api_key: opts.apiKey ?? 'conformance-key',
          temperature: 0,
          max_tokens: 512,
          enabled_tools: ['read', 'bash'],
          api_endpoint: opts.modelEndpoint,
        },
      }), auth)
      expect(res.status === 201, `create: status ${res.status} ${await res.text()}`)
      const duplicate = await post('/sessions', JSON.stringify({ session_id: sessionId, prompt: 'x', model_config: { provider: 'openai', model: 'm', api_key: 'k', temperature: 0, max_tokens: 1, enabled_tools: [] } }), auth)
      await errorShape(duplicate, 409)
      const stream = await fetch(`${base}/sessions/${sessionId}/stream`, { headers: { ...auth, accept: 'text/event-stream' }, signal: AbortSignal.timeout(Math.max(timeout, 300_000)) })
      expect(stream.status === 200 && /^text\/event-stream/.test(stream.headers.get('content-type') ?? ''), `stream: ${stream.status}`)
      const events = parseSse(await stream.text()).filter(e => e.event !== 'heartbeat')
      expect(events.length > 0, 'no events')
      events.forEach((e, i) => expect(e.id === i + 1, `event ${i} has id ${e.id}`))
      const terminal = events.at(-1)!
      const isTerminal = terminal.event === 'complete' || (terminal.event === 'error' && terminal.data.fatal === true) || (terminal.event === 'status' && terminal.data.status === 'cancelled')
      expect(isTerminal, `last event is not terminal: ${terminal.event}`)
      const status = await json(await get(`/sessions/${sessionId}/status`, auth))
      expect(status.last_event_id === terminal.id, `status last_event_id ${String(status.last_event_id)} vs ${terminal.id}`)
      expect(['completed', 'failed', 'cancelled'].includes(String(status.status)), `status ${String(status.status)}`)
      const cut = Math.floor(events.length / 2)
      const replay = await fetch(`${base}/sessions/${sessionId}/stream`, { headers: { ...auth, 'last-event-id': String(cut) } })
      const tail = parseSse(await replay.text()).filter(e => e.event !== 'heartbeat')
      expect(JSON.stringify(tail) === JSON.stringify(events.slice(cut)), 'replay after Last-Event-ID differs from the original stream')
      return `${String(status.status)} after ${events.length} events`
    })
  }
  return results
}
