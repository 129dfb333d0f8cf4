import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * Compares a presented bearer token with the secret in constant time, whatever their lengths:
 * both are hashed first, so neither the length nor a common prefix shows in the timing.
 */
export function tokenMatches (presented: string, secret: string): boolean {
  const a = createHash('sha256').update(presented).digest()
  const b = createHash('sha256').update(secret).digest()
  return timingSafeEqual(a, b)
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken (header: string | undefined): string | undefined {
  if (!header) return undefined
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
  return match?.[1]
}

/**
 * The shared secret's verdict on a request's `Authorization` header: `ok` when no secret is
 * configured or the bearer token matches it. One rule for the Fastify hook and the fast path.
 */
export function bearerVerdict (header: string | undefined, secret: string | undefined): 'ok' | 'missing' | 'invalid' {
  if (secret === undefined) return 'ok'
  const token = bearerToken(header)
  if (token === undefined) return 'missing'
  return tokenMatches(token, secret) ? 'ok' : 'invalid'
}
