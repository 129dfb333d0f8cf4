import fp from 'fastify-plugin'
import type { onRequestHookHandler } from 'fastify'
import { bearerToken, tokenMatches } from '../src/auth.js'
import { errorBody } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook guarding a route with the shared secret (passes everything when none is configured). */
    requireAuth: onRequestHookHandler
  }
}

export interface AuthOptions { secret: string | undefined }

export default fp<AuthOptions>(async function authPlugin (app, opts) {
  const secret = opts.secret
  // A callback hook, not an async one: it runs on every /sessions request, polling included.
  app.decorate('requireAuth', function requireAuth (request, reply, done) {
    if (secret === undefined) return done()
    const token = bearerToken(request.headers.authorization)
    if (token !== undefined && tokenMatches(token, secret)) return done()
    reply.code(401).header('www-authenticate', 'Bearer').send(errorBody(token === undefined ? 'Missing bearer token' : 'Invalid bearer token'))
  } satisfies onRequestHookHandler)
}, { name: 'auth' })
