import path from 'node:path'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

const Int = (minimum: number, maximum: number, def: number, description: string) =>
  Type.Integer({ minimum, maximum, default: def, description })

/** Every environment variable the sidecar reads, with its default. */
export const EnvSchema = Type.Object({
  WORKSPACE_DIR: Type.String({ minLength: 1, default: '/workspace', description: 'the shared workspace the agent works in' }),
  PORT: Int(0, 65535, 3003, 'listen port'),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0', description: 'listen address' }),
  LOG_LEVEL: Type.Union(['debug', 'info', 'warn', 'error'].map(l => Type.Literal(l)), { default: 'info', description: 'debug|info|warn|error' }),
  SESSION_TIMEOUT: Int(1, 7 * 24 * 3600, 3600, 'max session duration, seconds'),
  MAX_CONCURRENT_SESSIONS: Int(1, 100, 5, 'sessions pending/running at once'),
  OPENCODE_SHARED_SECRET: Type.Optional(Type.String({ minLength: 1, description: 'bearer secret for /sessions routes' })),
  HEARTBEAT_INTERVAL: Int(1, 300, 15, 'seconds between SSE heartbeats'),
  STATE_DIR: Type.String({ minLength: 1, default: '/var/lib/opencode-server', description: 'where session records and event logs persist (outside the workspace)' }),
  SHUTDOWN_GRACE: Int(1, 600, 25, 'seconds SIGTERM may take'),
  SESSION_RETENTION_COUNT: Int(1, 100_000, 1000, 'ended sessions kept (oldest removed first)'),
  SESSION_RETENTION_HOURS: Int(1, 24 * 365, 168, 'hours an ended session stays queryable'),
  MAX_STREAM_CLIENTS_PER_SESSION: Int(1, 10_000, 500, 'concurrent stream clients per session'),
  MAX_STREAM_CLIENTS: Int(1, 100_000, 2000, 'concurrent stream clients in total'),
  OPENCODE_BIN: Type.Optional(Type.String({ minLength: 1, description: 'path of the opencode binary (default: the pinned opencode-ai package)' })),
})
export type Env = Static<typeof EnvSchema>

export interface Config {
  workspaceDir: string
  port: number
  host: string
  logLevel: 'debug' | 'info' | 'warn' | 'error'
  sessionTimeoutMs: number
  maxConcurrentSessions: number
  sharedSecret: string | undefined
  heartbeatMs: number
  stateDir: string
  shutdownGraceMs: number
  retentionCount: number
  retentionMs: number
  maxStreamClientsPerSession: number
  maxStreamClients: number
  opencodeBin: string | undefined
}

export class ConfigError extends Error {
  constructor (readonly variable: string, reason: string) {
    super(`Invalid configuration: ${variable} ${reason}`)
    this.name = 'ConfigError'
  }
}

const SECRET_VARIABLES = new Set(['OPENCODE_SHARED_SECRET'])

function describe (schema: TSchema): string {
  if (schema.anyOf) return `must be one of ${schema.anyOf.map((s: TSchema) => s.const).join(', ')}`
  if (schema.type === 'integer') return `must be an integer from ${schema.minimum} to ${schema.maximum}`
  if (schema.minLength) return `must be at least ${schema.minLength} characters long`
  return 'is invalid'
}

/** Reads the environment once; throws a ConfigError naming the first bad variable. */
export function loadConfig (source: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = source[key]
    if (key === 'OPENCODE_SHARED_SECRET' && value !== undefined && value.trim() === '') {
      // An empty secret must not silently turn authentication off (e.g. a missing Secret key).
      throw new ConfigError(key, 'is set but empty: unset it to run without authentication')
    }
    if (value !== undefined && value !== '') raw[key] = value.trim()
  }
  const env = Value.Default(EnvSchema, { ...raw }) as Record<string, unknown>
  for (const key of Object.keys(EnvSchema.properties)) {
    const schema = EnvSchema.properties[key as keyof Env] as TSchema
    if (env[key] === undefined) continue
    if (schema.type === 'integer' && typeof env[key] === 'string' && /^[+-]?\d{1,15}$/.test(env[key])) env[key] = Number(env[key])
    if (!Value.Check(schema, env[key])) {
      const shown = SECRET_VARIABLES.has(key) ? '' : ` (got ${JSON.stringify(raw[key])})`
      throw new ConfigError(key, describe(schema) + shown)
    }
  }
  const e = env as Env
  const workspaceDir = path.resolve(e.WORKSPACE_DIR)
  const stateDir = path.resolve(e.STATE_DIR)
  const relative = path.relative(workspaceDir, stateDir)
  if (relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative))) {
    throw new ConfigError('STATE_DIR', `must be outside WORKSPACE_DIR (the agent can read the workspace) (got ${JSON.stringify(e.STATE_DIR)})`)
  }
  return {
    workspaceDir,
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL as Config['logLevel'],
    sessionTimeoutMs: e.SESSION_TIMEOUT * 1000,
    maxConcurrentSessions: e.MAX_CONCURRENT_SESSIONS,
    sharedSecret: e.OPENCODE_SHARED_SECRET,
    heartbeatMs: e.HEARTBEAT_INTERVAL * 1000,
    stateDir,
    shutdownGraceMs: e.SHUTDOWN_GRACE * 1000,
    retentionCount: e.SESSION_RETENTION_COUNT,
    retentionMs: e.SESSION_RETENTION_HOURS * 3600_000,
    maxStreamClientsPerSession: e.MAX_STREAM_CLIENTS_PER_SESSION,
    maxStreamClients: e.MAX_STREAM_CLIENTS,
    opencodeBin: e.OPENCODE_BIN,
  }
}
