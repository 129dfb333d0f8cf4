import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions, LoggerOptions } from 'pino'

const SECRET_KEYS = ['api_key', 'apiKey', 'authorization', 'x-api-key', 'x-goog-api-key', 'password', 'secret']

/** Paths pino censors: the secret keys at the top level and up to four levels down. */
function redactPaths (): string[] {
  const paths: string[] = []
  for (const key of SECRET_KEYS) {
    const k = /^[A-Za-z_]\w*$/.test(key) ? key : `["${key}"]`
    for (let depth = 0; depth <= 4; depth++) {
      const prefix = '*.'.repeat(depth)
      paths.push(k.startsWith('[') ? (depth ? prefix.slice(0, -1) + k : `${k}`) : prefix + k)
    }
  }
  return paths
}

export function loggerOptions (level: string, pretty = process.stdout.isTTY): LoggerOptions {
  return {
    level,
    redact: { paths: redactPaths(), censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  }
}

type LogMethod = (...args: unknown[]) => void
type Logger = FastifyBaseLogger
const METHODS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const
const LEVELS: Record<string, number> = { fatal: 60, error: 50, warn: 40, info: 30, debug: 20, trace: 10, silent: Infinity }

/**
 * Route option `childLoggerFactory` for routes polled many times a second (probes, status,
 * metrics): the per-request child logger (with its request id) is only built when the route
 * actually logs something, which such routes rarely do. Building it for every request was the
 * largest cost of a probe.
 */
export function lazyChildLogger (logger: Logger, bindings: Bindings, opts: ChildLoggerOptions): Logger {
  let child: Logger | undefined
  const real = () => (child ??= logger.child(bindings, opts))
  const level = opts.level ?? logger.level
  const threshold = LEVELS[level] ?? 0
  const lazy: Record<string, unknown> = {
    level,
    child: (b: Bindings, o?: ChildLoggerOptions) => real().child(b, o),
    isLevelEnabled: (l: string) => (LEVELS[l] ?? Infinity) >= threshold,
    silent: () => {},
  }
  for (const method of METHODS) {
    const enabled = LEVELS[method] >= threshold
    lazy[method] = enabled ? (...args: unknown[]) => (real()[method] as LogMethod)(...args) : () => {}
  }
  return lazy as unknown as Logger
}
