import { Type, type Static } from '@sinclair/typebox'

export const ErrorBody = Type.Object({
  error: Type.String({ description: 'Human-readable message' }),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown(), {
    description: 'Machine-readable context; validation errors name the `field` (JSON path for nested fields) and the `reason`',
  })),
  timestamp: Type.String({ format: 'date-time' }),
}, { title: 'Error', description: 'Body of every non-2xx response' })
export type ErrorBodyType = Static<typeof ErrorBody>

const descriptions: Record<number, string> = {
  400: 'Invalid input',
  401: 'Missing or wrong bearer token',
  404: 'Unknown session',
  406: 'The Accept header excludes text/event-stream',
  409: 'Conflict with the session\'s state',
  413: 'Body too large',
  415: 'Body is not JSON',
  500: 'Internal or engine error',
  503: 'At capacity or not ready; see Retry-After',
}

/** The documented error responses of a route, by status code. */
export function errorResponses (...codes: number[]): Record<number, typeof ErrorBody> {
  const out: Record<number, typeof ErrorBody> = {}
  for (const code of codes) out[code] = { ...ErrorBody, description: descriptions[code] ?? 'Error' }
  return out
}
