import fp from 'fastify-plugin'
import { lazyChildLogger } from '../src/logger.js'

/** Prometheus text at /metrics (open, like the probes), and a duration for every HTTP request. */
export default fp(async function metricsPlugin (app) {
  const { registry, httpRequests } = app.metrics
  app.addHook('onResponse', (request, reply, done) => {
    httpRequests.observe(request.method, request.routeOptions.url ?? 'unknown', reply.statusCode, reply.elapsedTime / 1000)
    done()
  })
  app.get('/metrics', { logLevel: 'warn', childLoggerFactory: lazyChildLogger, schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType)
    return await registry.metrics()
  })
}, { name: 'metrics', dependencies: ['sessions'] })
