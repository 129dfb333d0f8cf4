import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LiveBody, NotReadyBody, ReadyBody } from '../schemas/health.js'
import { lazyChildLogger } from '../src/logger.js'

/** The liveness body (also answered by src/fast-path.ts). */
export const LIVE = { status: 'ok' as const }

const healthRoutes: FastifyPluginAsyncTypebox = async function (app) {
  // Probes are polled every few seconds: their successful requests are not logged.
  const liveness = {
    logLevel: 'warn' as const,
    childLoggerFactory: lazyChildLogger,
    schema: {
      tags: ['probes'],
      summary: 'Liveness: the process and its event loop are alive (never waits on the engine)',
      response: { 200: LiveBody },
    },
  }
  app.get('/healthz', { ...liveness, schema: { ...liveness.schema, operationId: 'healthz' } }, async () => LIVE)
  app.get('/health', { ...liveness, schema: { ...liveness.schema, operationId: 'health', summary: 'Same as /healthz' } }, async () => LIVE)

  app.get('/ready', {
    logLevel: 'warn',
    childLoggerFactory: lazyChildLogger,
    schema: {
      tags: ['probes'],
      operationId: 'ready',
      summary: 'Readiness: the workspace is readable and writable and the OpenCode engine answers',
      response: { 200: ReadyBody, 503: NotReadyBody },
    },
  }, async (_request, reply) => {
    const reason = await app.readiness.reason()
    if (reason) return reply.code(503).send({ status: 'not ready' as const, error: reason })
    return { status: 'ready' as const }
  })
}

export default healthRoutes
