import Fastify, { type FastifyInstance } from 'fastify'
import sensible from '@fastify/sensible'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv, type Options as AjvOptions } from 'ajv'
import addFormats from 'ajv-formats'
import fastJson from 'fast-json-stringify'
import { randomBytes } from 'node:crypto'
import type http from 'node:http'
import type { Config } from './config.js'
import { loggerOptions } from './logger.js'
import { FastPath } from './fast-path.js'
import { StatusBodies } from './status-bodies.js'
import { SessionStatus } from '../schemas/session.js'
import errorsPlugin, { clientErrors, frameworkErrors } from '../plugins/errors.js'
import authPlugin from '../plugins/auth.js'
import readinessPlugin from '../plugins/readiness.js'
import swaggerPlugin from '../plugins/swagger.js'
import sessionsPlugin from '../plugins/sessions.js'
import metricsPlugin from '../plugins/metrics.js'
import healthRoutes, { LIVE } from '../routes/health.js'
import sessionRoutes from '../routes/sessions.js'

export const BODY_LIMIT_BYTES = 1024 * 1024

export interface BuildOptions {
  /** false silences logs (tests); otherwise pino options derive from config. */
  logger?: boolean
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: NodeJS.WritableStream
}

/**
 * Request ids: a random prefix per process and a counter (`4f1c9a02-17`): unique across restarts
 * in practice, and a fraction of the cost of a UUID per request.
 */
export function requestIds (): () => string {
  const prefix = randomBytes(4).toString('hex')
  let next = 0
  return () => `${prefix}-${++next}`
}

function validator (options: AjvOptions) {
  const ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true, removeAdditional: false, ...options })
  addFormats.default(ajv)
  return ajv
}

/**
 * Keep-alive connections that go idle while the server closes are closed too. Node closes the
 * idle ones once, when `close()` begins, so a connection whose request was in flight then stayed
 * open — and the server with it — until its keep-alive timeout (72 s), far past the shutdown grace
 * (seen as a rare forced exit when SIGTERM met a status poll or a probe).
 */
function closeIdleWhileClosing (server: http.Server): void {
  if (!server.listening) return
  const sweep = setInterval(() => server.closeIdleConnections(), 50)
  sweep.unref()
  server.once('close', () => clearInterval(sweep))
}

/** The one app, used by the server and by every test. */
export async function buildApp (config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const requestId = requestIds()
  const fast = new FastPath({
    requestId,
    secret: config.sharedSecret,
    observe: (...args) => app.metrics.httpRequests.observe(...args),
  })
  const app = Fastify({
    logger: options.logger === false
      ? false
      : options.logStream
        ? { ...loggerOptions(config.logLevel, false), stream: options.logStream }
        : loggerOptions(config.logLevel),
    bodyLimit: BODY_LIMIT_BYTES,
    requestIdHeader: 'x-request-id',
    genReqId: requestId,
    // During shutdown the app answers for itself: probes stay truthful (/healthz 200, /ready
    // 503 with its reason) and new sessions get the contract's 503.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true },
    frameworkErrors,
    clientErrorHandler: clientErrors,
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Bodies are validated as sent (a string is never coerced into a number); params and
  // queries arrive as strings, so they may be coerced.
  const bodies = validator({ coerceTypes: false })
  const others = validator({ coerceTypes: 'array' })
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodies : others).compile(schema))

  // The polled routes' successful answers are served ahead of Fastify (src/fast-path.ts). Its
  // closing hook is the first preClose hook, so its answers say `connection: close` as soon as
  // Fastify's do (the sessions plugin's hook, later, may wait seconds for sessions to end).
  fast.attach(app.server)
  app.addHook('preClose', done => {
    fast.close()
    closeIdleWhileClosing(app.server)
    done()
  })

  // Every body is JSON: anything else (text/plain included) is a 415.
  app.removeContentTypeParser('text/plain')
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })

  await app.register(sensible)
  await app.register(errorsPlugin)
  await app.register(authPlugin, { secret: config.sharedSecret })
  await app.register(readinessPlugin, { workspaceDir: config.workspaceDir, stateDir: config.stateDir })
  await app.register(swaggerPlugin)
  await app.register(sessionsPlugin, { config })
  await app.register(metricsPlugin)
  await app.register(healthRoutes)
  await app.register(sessionRoutes)

  fast.constant('/healthz', LIVE)
  fast.constant('/health', LIVE)
  const statusBodies = new StatusBodies(fastJson(SessionStatus))
  fast.sessionStatus(id => {
    const status = app.sessions.findStatus(id)
    return status && statusBodies.body(status)
  })
  return app
}
