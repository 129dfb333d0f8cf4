import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { ErrorObject } from 'ajv'
import { ServiceError, type ServiceErrorKind } from '../src/errors.js'
import type { ErrorBodyType } from '../schemas/common.js'

const STATUS: Record<ServiceErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  conflict: 409,
  capacity: 503,
  not_ready: 503,
  engine: 500,
}

export function errorBody (error: string, details?: Record<string, unknown>): ErrorBodyType {
  return details ? { error, details, timestamp: new Date().toISOString() } : { error, timestamp: new Date().toISOString() }
}

const PART_NAMES: Record<string, string> = { body: 'body', params: 'path', querystring: 'query', headers: 'header' }

/** `/model_config/temperature` → `model_config.temperature`, plus the reason in plain words. */
export function describeValidationError (e: ErrorObject, context: string): { field: string, reason: string } {
  const segments = e.instancePath.split('/').slice(1).map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'))
  let reason = e.message ?? 'is invalid'
  const params = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'required': segments.push(String(params.missingProperty)); reason = 'is required'; break
    case 'additionalProperties': segments.push(String(params.additionalProperty)); reason = 'is not a known field'; break
    case 'pattern':
      reason = segments.at(-1) === 'prompt' ? 'must not be empty or whitespace only' : 'has an invalid format'
      if (/session_?id/i.test(String(segments.at(-1)))) reason = 'must be a valid UUID'
      if (segments.at(-1) === 'last_event_id') reason = 'must be a non-negative integer event id'
      break
    case 'maximum': reason = `must be at most ${String(params.limit)}`; break
    case 'minimum': reason = `must be at least ${String(params.limit)}`; break
    case 'maxLength': reason = `must be at most ${String(params.limit)} characters long`; break
    case 'minLength': reason = 'must not be empty'; break
    case 'maxItems': reason = `must have at most ${String(params.limit)} items`; break
    case 'type': reason = `must be ${params.type === 'integer' ? 'an integer' : `of type ${String(params.type)}`}`; break
    case 'uniqueItems': reason = 'must not contain duplicates'; break
    default: break
  }
  // An empty key (`{"": 1}`) is shown as `""`, so the field is still named.
  const named = segments.map(s => s === '' ? '""' : s)
  const field = named.length ? named.join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]') : (PART_NAMES[context] ?? context)
  return { field, reason }
}

/** Union members (provider, tool names, states) fail as anyOf: report the allowed values instead. */
function pickError (errors: ErrorObject[]): ErrorObject {
  const anyOf = errors.find(e => e.keyword === 'anyOf')
  if (anyOf) {
    const allowed = errors
      .filter(e => e.keyword === 'const' && e.instancePath === anyOf.instancePath)
      .map(e => String((e.params as { allowedValue: unknown }).allowedValue))
    if (allowed.length) return { ...anyOf, keyword: 'enum', message: `must be one of: ${allowed.join(', ')}` }
  }
  return errors.find(e => e.keyword !== 'const' && e.keyword !== 'type' && e.keyword !== 'anyOf') ?? errors[0]
}

function statusOf (error: FastifyError): number {
  const code = error.statusCode ?? 500
  return code >= 400 && code < 600 ? code : 500
}

const FRAMEWORK_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'Unsupported Content-Type: send application/json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'Request body is too large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'Request body is empty: send a JSON object',
  FST_ERR_CTP_INVALID_JSON_BODY: 'Request body is not valid JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'Content-Length does not match the body',
}

const ROUTING_MESSAGES: Record<string, string> = {
  FST_ERR_BAD_URL: 'Malformed URL: the path has an invalid percent-encoding',
  FST_ERR_MAX_PARAM_LENGTH: 'A path parameter is too long',
}

/**
 * Fastify answers errors found while routing (a malformed percent-encoding, an over-long path
 * parameter) before any handler runs, with its own body; this gives them the contract's body.
 * Passed as the `frameworkErrors` server option.
 */
export function frameworkErrors (error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = statusOf(error)
  const message = status >= 500 ? 'Internal server error' : ROUTING_MESSAGES[error.code] ?? 'Bad request'
  reply.code(status).send(errorBody(message))
}

const CLIENT_ERRORS: Record<string, [number, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request timeout'],
  HPE_HEADER_OVERFLOW: [431, 'Request headers are too large'],
}

/**
 * Malformed HTTP (bad request line, oversized headers, timeouts) never reaches Fastify's
 * handlers; node's socket is answered here with the contract's body. Passed as the
 * `clientErrorHandler` server option.
 */
export function clientErrors (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [status, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Malformed HTTP request']
  const body = JSON.stringify(errorBody(message))
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${message}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}

/** One error handler and one 404 handler give every non-2xx the contract's body. */
export default fp(async function errorsPlugin (app) {
  app.setErrorHandler(function (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    if (error instanceof ServiceError) {
      const status = STATUS[error.kind]
      if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds))
      if (status >= 500) request.log.error({ err: error }, 'service error')
      return reply.code(status).send(errorBody(error.message, error.details))
    }
    if (error.validation) {
      const { field, reason } = describeValidationError(pickError(error.validation as ErrorObject[]), error.validationContext ?? 'body')
      return reply.code(400).send(errorBody(`Invalid request: ${field} ${reason}`, { field, reason }))
    }
    const status = statusOf(error)
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
      return reply.code(status).send(errorBody('Internal server error'))
    }
    const known = error.code && FRAMEWORK_MESSAGES[error.code]
    const message = known || (error instanceof SyntaxError ? 'Request body is not valid JSON' : error.message)
    if (status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer')
    return reply.code(status).send(errorBody(message))
  })

  app.setNotFoundHandler(function (request, reply) {
    reply.code(404).send(errorBody(`Route ${request.method} ${request.url.split('?')[0].slice(0, 200)} not found`))
  })
}, { name: 'errors' })
