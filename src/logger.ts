import type { LoggerOptions } from 'pino'

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
