import fp from 'fastify-plugin'
import { Readiness, checkDirectory } from '../src/readiness.js'

declare module 'fastify' {
  interface FastifyInstance {
    readiness: Readiness
  }
}

export interface ReadinessOptions { workspaceDir: string, stateDir: string }

/** `/ready` = every registered check passes; the first step of shutdown flips it. */
export default fp<ReadinessOptions>(async function readinessPlugin (app, opts) {
  const readiness = new Readiness()
  readiness.add('workspace', () => checkDirectory(opts.workspaceDir))
  readiness.add('state', () => checkDirectory(opts.stateDir, 'state'))
  app.decorate('readiness', readiness)
  app.addHook('preClose', async () => readiness.shutdown())
}, { name: 'readiness' })
