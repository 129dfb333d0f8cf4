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
  const field = segments.length ? segments.join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]') : (PART_NAMES[context] ?? context)
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
