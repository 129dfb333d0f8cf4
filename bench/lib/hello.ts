import Fastify, { type FastifyInstance } from 'fastify'

/** The control plane's baseline: a bare Fastify hello-world (no logger, no hooks, no schema). */
export function helloWorld (): FastifyInstance {
  const app = Fastify({ logger: false })
  app.get('/', async () => ({ hello: 'world' }))
  return app
}
