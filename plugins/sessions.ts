import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { SessionManager } from '../src/sessions/manager.js'
import type { SessionService } from '../src/sessions/service.js'

declare module 'fastify' {
  interface FastifyInstance {
    sessions: SessionService
  }
}

export interface SessionsOptions { config: Config }

/** The session core: its readiness joins /ready, its streams end first at shutdown. */
export default fp<SessionsOptions>(async function sessionsPlugin (app, { config }) {
  const manager = new SessionManager(config, app.log)
  app.decorate('sessions', manager)
  app.readiness.add('engine', () => manager.notReadyReason())
  app.addHook('onReady', async () => manager.start())
  app.addHook('preClose', async () => manager.closeStreams())
  app.addHook('onClose', async () => manager.close())
}, { name: 'sessions', dependencies: ['readiness'] })
