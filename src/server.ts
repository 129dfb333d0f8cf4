import closeWithGrace from 'close-with-grace'
import { ConfigError, loadConfig, type Config } from './config.js'
import { buildApp } from './app.js'
import { killOrphans } from './engine/supervisor.js'

let config: Config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`${err.message}\n`)
  process.exit(1)
}

const app = await buildApp(config)

// However the process ends (a forced exit after the grace time, a second signal), nothing the
// engine started may outlive it: kill whatever still carries this STATE_DIR's engine marker.
process.once('exit', () => killOrphans(config.stateDir))

// The forced exit comes a little before SHUTDOWN_GRACE, so the process is gone before the
// kubelet's own deadline (terminationGracePeriodSeconds, set above it).
closeWithGrace({ delay: Math.max(1000, config.shutdownGraceMs - 2000) }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'shutting down')
  await app.close()
})

try {
  await app.listen({ port: config.port, host: config.host })
} catch (err) {
  app.log.error({ err }, 'could not listen')
  await app.close()
  process.exit(1)
}
