import fp from 'fastify-plugin'
import type { onRequestHookHandler } from 'fastify'
import { bearerVerdict } from '../src/auth.js'
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
    const verdict = bearerVerdict(request.headers.authorization, secret)
    if (verdict === 'ok') return done()
    reply.code(401).header('www-authenticate', 'Bearer').send(errorBody(verdict === 'missing' ? 'Missing bearer token' : 'Invalid bearer token'))
  } satisfies onRequestHookHandler)
}, { name: 'auth' })
