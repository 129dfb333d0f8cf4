/** Why a request about sessions could not be served, independent of HTTP. */
export type ServiceErrorKind =
  | 'invalid' // the input is well-formed but not acceptable (400)
  | 'not_found' // unknown session (404)
  | 'conflict' // the session's state forbids it (409)
  | 'capacity' // too many sessions or stream clients (503 + Retry-After)
  | 'not_ready' // engine starting/down, shutting down (503 + Retry-After)
  | 'engine' // the engine failed to do what was asked (500)

export class ServiceError extends Error {
  constructor (
    readonly kind: ServiceErrorKind,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly retryAfterSeconds?: number
  ) {
    super(message)
    this.name = 'ServiceError'
  }
}

export const invalidField = (field: string, reason: string) =>
  new ServiceError('invalid', `Invalid request: ${field} ${reason}`, { field, reason })
