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

type Logger = FastifyBaseLogger
const LEVELS: Record<string, number> = { fatal: 60, error: 50, warn: 40, info: 30, debug: 20, trace: 10, silent: Infinity }

/**
 * A request's logger that builds the real pino child (with its request id) only when a line is
 * actually logged. Methods live on the prototype: one small object per request, no closures.
 */
class LazyLogger {
  readonly level: string
  private readonly threshold: number
  private real: Logger | undefined

  constructor (private readonly parent: Logger, private readonly bindings: Bindings, private readonly opts: ChildLoggerOptions) {
    this.level = opts.level ?? parent.level
    this.threshold = LEVELS[this.level] ?? 0
  }

  private materialize (): Logger {
    return (this.real ??= this.parent.child(this.bindings, this.opts))
  }

  private log (level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace', args: unknown[]): void {
    if (LEVELS[level] >= this.threshold) (this.materialize()[level] as (...a: unknown[]) => void)(...args)
  }

  fatal (...args: unknown[]): void { this.log('fatal', args) }
  error (...args: unknown[]): void { this.log('error', args) }
  warn (...args: unknown[]): void { this.log('warn', args) }
  info (...args: unknown[]): void { this.log('info', args) }
  debug (...args: unknown[]): void { this.log('debug', args) }
  trace (...args: unknown[]): void { this.log('trace', args) }
  silent (): void {}
  isLevelEnabled (level: string): boolean { return (LEVELS[level] ?? Infinity) >= this.threshold }
  child (bindings: Bindings, opts?: ChildLoggerOptions): Logger {
    return this.materialize().child(bindings, opts)
  }
}

/**
 * Route option `childLoggerFactory` for routes polled many times a second (probes, status,
 * metrics): the per-request child logger (with its request id) is only built when the route
 * actually logs something, which such routes rarely do. Building it for every request was the
 * largest cost of a probe.
 */
export function lazyChildLogger (logger: Logger, bindings: Bindings, opts: ChildLoggerOptions): Logger {
  return new LazyLogger(logger, bindings, opts) as unknown as Logger
}
