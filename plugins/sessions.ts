import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { SessionManager } from '../src/sessions/manager.js'
import type { SessionService } from '../src/sessions/service.js'
import type { Metrics } from '../src/metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    sessions: SessionService
    metrics: Metrics
  }
}

export interface SessionsOptions { config: Config }

/** The session core: its readiness joins /ready; at shutdown its sessions and streams end first. */
export default fp<SessionsOptions>(async function sessionsPlugin (app, { config }) {
  const manager = new SessionManager(config, app.log)
  app.decorate('sessions', manager)
  app.decorate('metrics', manager.metrics)
  app.readiness.add('engine', () => manager.notReadyReason())
  app.addHook('onReady', async () => manager.start())
  // Running sessions end (terminal events reach their clients) and streams close before the
  // server stops listening; the engine stops last.
  app.addHook('preClose', async () => manager.shutdown())
  app.addHook('onClose', async () => manager.close())
}, { name: 'sessions', dependencies: ['readiness'] })
