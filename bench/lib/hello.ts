import Fastify, { type FastifyInstance } from 'fastify'

/**
 * The control plane's baseline: a bare Fastify hello-world (no logger, no hooks, no schema).
 * With `bodyBytes`, the same answering a JSON body of that size (`{"hello":"xxx…"}`): the status
 * document is ~650 bytes where hello-world's is 17, and a body's size alone costs throughput.
 */
export function helloWorld (bodyBytes?: number): FastifyInstance {
  const app = Fastify({ logger: false })
  const body = bodyBytes === undefined ? { hello: 'world' } : { hello: 'x'.repeat(Math.max(0, bodyBytes - '{"hello":""}'.length)) }
  app.get('/', async () => body)
  return app
}

/**
 * The same hello-world written the way Fastify apps are: its route registered by a plugin (an
 * encapsulated context). Not a target's baseline, for scale: a process that has registered a
 * plugin answers every request more slowly than one that never did (bench/README.md).
 */
export function helloWorldInPlugin (): FastifyInstance {
  const app = Fastify({ logger: false })
  app.register(async function routes (instance) {
    instance.get('/', async () => ({ hello: 'world' }))
  })
  return app
}
