import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { errorResponses } from '../schemas/common.js'
import { EVENT_SCHEMAS } from '../schemas/events.js'
import {
  CancelBody, CreateSessionBody, SessionParams, SessionStatus, StreamHeaders, StreamQuery,
} from '../schemas/session.js'
import { ServiceError } from '../src/errors.js'
import { lazyChildLogger } from '../src/logger.js'

const security = [{ bearerAuth: [] }]

/** True unless the Accept header lists media ranges none of which admits text/event-stream. */
export function acceptsEventStream (accept: string | undefined): boolean {
  if (!accept || !accept.trim()) return true
  return accept.split(',').some(range => {
    const [type, ...params] = range.trim().toLowerCase().split(';').map(s => s.trim())
    const q = params.find(p => p.startsWith('q='))
    if (q && Number(q.slice(2)) === 0) return false
    return type === 'text/event-stream' || type === 'text/*' || type === '*/*'
  })
}

function cursor (header: string | undefined, query: string | undefined): number {
  const raw = header?.trim() || query
  if (raw === undefined || raw === '') return 0
  if (!/^\d{1,15}$/.test(raw)) {
    const field = header?.trim() ? 'Last-Event-ID' : 'last_event_id'
    throw new ServiceError('invalid', `Invalid request: ${field} must be a non-negative integer event id`, { field, reason: 'must be a non-negative integer event id' })
  }
  return Number(raw)
}

const sessionRoutes: FastifyPluginAsyncTypebox = async function (app) {
  app.addHook('onRequest', app.requireAuth)

  app.post('/sessions', {
    schema: {
      tags: ['sessions'],
      operationId: 'createSession',
      summary: 'Start a coding session on the workspace',
      security,
      body: CreateSessionBody,
      response: { 201: SessionStatus, ...errorResponses(400, 401, 409, 413, 415, 500, 503) },
    },
  }, async (request, reply) => {
    const status = await app.sessions.create(request.body)
    return reply.code(201).header('location', `/sessions/${status.session_id}/status`).send(status)
  })

  app.get('/sessions/:sessionId/status', {
    // Polled often; failures still log (as errors or through the error handler at warn).
    logLevel: 'warn',
    childLoggerFactory: lazyChildLogger,
    schema: {
      tags: ['sessions'],
      operationId: 'getSessionStatus',
      summary: 'The session\'s current status',
      security,
      params: SessionParams,
      response: { 200: SessionStatus, ...errorResponses(400, 401, 404) },
    },
  }, async (request) => app.sessions.status(request.params.sessionId))

  app.delete('/sessions/:sessionId', {
    schema: {
      tags: ['sessions'],
      operationId: 'cancelSession',
      summary: 'Cancel the session (idempotent): aborts the agent and its tool processes',
      security,
      params: SessionParams,
      response: { 200: CancelBody, ...errorResponses(400, 401, 404, 409) },
    },
  }, async (request) => app.sessions.cancel(request.params.sessionId))

  app.get('/sessions/:sessionId/stream', {
    schema: {
      tags: ['sessions'],
      operationId: 'streamSession',
      summary: 'The session\'s events as Server-Sent Events: replay after Last-Event-ID, then live',
      description: 'Each event is `event: <type>`, `id: <n>`, `data: <JSON>`; ids start at 1 and are never reused. ' +
        '`heartbeat` events (data `{}`) carry no id. The stream closes after the terminal event ' +
        '(`complete`, a fatal `error`, or `status` cancelled).',
      security,
      params: SessionParams,
      querystring: StreamQuery,
      headers: StreamHeaders,
      response: {
        200: {
          description: 'An SSE stream; the data of each event follows one of these schemas (by event name)',
          content: {
            'text/event-stream': {
              schema: Type.Union(Object.entries(EVENT_SCHEMAS).map(([name, schema]) => ({ ...schema, title: name }))),
            },
          },
        },
        ...errorResponses(400, 401, 404, 406, 503),
      },
    },
  }, async (request, reply) => {
    if (!acceptsEventStream(request.headers.accept)) {
      throw app.httpErrors.notAcceptable('This endpoint only produces text/event-stream')
    }
    const afterId = cursor(request.headers['last-event-id'], request.query.last_event_id)
    await app.sessions.stream(request.params.sessionId, afterId, reply.raw)
    reply.hijack()
  })
}

export default sessionRoutes
