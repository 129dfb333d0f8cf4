import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { readFileSync } from 'node:fs'
import { EVENT_SCHEMAS } from '../schemas/events.js'

/** The package version: package.json is one level up from source, two from the build output (dist/plugins). */
function packageVersion (): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { version: string }).version
    } catch {}
  }
  return '0.0.0'
}
const version = packageVersion()

/** OpenAPI 3 at /openapi.json, generated from the route schemas, and Swagger UI at /docs. */
export default fp(async function swaggerPlugin (app) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'opencode-server',
        version,
        description: 'Runs the OpenCode coding agent next to a workspace and exposes it over REST + Server-Sent Events.',
      },
      tags: [
        { name: 'sessions', description: 'Coding sessions and their event streams' },
        { name: 'probes', description: 'Kubernetes liveness and readiness' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'OPENCODE_SHARED_SECRET, when the sidecar has one' },
        },
        schemas: Object.fromEntries(Object.entries(EVENT_SCHEMAS).map(([name, schema]) => [`${name}_event`, schema])),
      },
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}, { name: 'swagger' })
