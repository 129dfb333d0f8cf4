import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { bearerToken, tokenMatches } from '../src/auth.js'
import { errorBody } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook guarding a route with the shared secret (a no-op when none is configured). */
    requireAuth: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

export interface AuthOptions { secret: string | undefined }

export default fp<AuthOptions>(async function authPlugin (app, opts) {
  const secret = opts.secret
  app.decorate('requireAuth', async function requireAuth (request: FastifyRequest, reply: FastifyReply) {
    if (secret === undefined) return
    const token = bearerToken(request.headers.authorization)
    if (token !== undefined && tokenMatches(token, secret)) return
    const error = token === undefined ? 'Missing bearer token' : 'Invalid bearer token'
    reply.code(401).header('www-authenticate', 'Bearer').send(errorBody(error))
    return reply
  })
}, { name: 'auth' })
