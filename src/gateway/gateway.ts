import { randomBytes } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FastifyBaseLogger } from 'fastify'
import { tokenMatches } from '../auth.js'
import { credentialHeaders, rewriteBody, upstreamUrl, type SessionRoute } from './providers.js'

export const TOKEN_HEADER = 'x-ocs-token'
export const SESSION_HEADER = 'x-ocs-session'

export interface GatewayOptions {
  /** The route of the sidecar session that owns this engine session (or its root), if any. */
  resolve: (engineSessionId: string) => Promise<SessionRoute | undefined>
  log: FastifyBaseLogger
  /** Upper bound on a provider request body the engine sends. */
  maxBodyBytes?: number
}

const FORWARDED_REQUEST_HEADERS = new Set(['content-type', 'accept', 'anthropic-beta', 'anthropic-version', 'openai-beta', 'user-agent'])
const DROPPED_RESPONSE_HEADERS = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive'])

/**
 * The loopback gateway between the engine and the model providers. The engine's provider
 * configs point here with a placeholder key; each request is mapped to its session (by the
 * engine session id the sidecar's plugin adds), gets the session's real key and settings, and
 * is streamed to the real endpoint and back unchanged.
 *
 * Anything on loopback (the agent's bash included) can reach this port, so every request must
 * carry a token that only the plugin inside the engine holds: it claims it once, when the
 * engine loads it, before any agent tool can run; a later claim is refused.
 */
export class ProviderGateway {
  private server?: http.Server
  private token = ''
  private claimed = false
  private readonly maxBodyBytes: number

  constructor (private readonly opts: GatewayOptions) {
    this.maxBodyBytes = opts.maxBodyBytes ?? 64 * 1024 * 1024
  }

  get url (): string {
    const address = this.server?.address() as AddressInfo | null
    if (!address) throw new Error('gateway not started')
    return `http://127.0.0.1:${address.port}`
  }

  /** True once the engine's plugin holds the current token. */
  get ready (): boolean {
    return this.claimed
  }

  /** A fresh token that the next engine process claims (call before each engine start). */
  rotate (): void {
    this.token = randomBytes(32).toString('base64url')
    this.claimed = false
  }

  async start (): Promise<void> {
    this.rotate()
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(err => {
        this.opts.log.error({ err }, 'gateway request failed')
        if (!res.headersSent) reply(res, 502, { error: { message: 'opencode-server gateway error' } })
        else res.destroy()
      })
    })
    this.server.keepAliveTimeout = 60_000
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(0, '127.0.0.1', () => resolve())
    })
  }

  async close (): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
  }

  private authorized (req: IncomingMessage): boolean {
    const presented = req.headers[TOKEN_HEADER]
    return this.claimed && typeof presented === 'string' && tokenMatches(presented, this.token)
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway')
    if (req.method === 'POST' && url.pathname === '/bootstrap') {
      if (this.claimed) return reply(res, 403, { error: 'already claimed' })
      this.claimed = true
      return reply(res, 200, { token: this.token })
    }
    if (!this.authorized(req)) return reply(res, 401, { error: { message: 'opencode-server gateway: not authorized' } })
    const engineSession = req.headers[SESSION_HEADER]
    if (typeof engineSession !== 'string' || !engineSession) return reply(res, 400, { error: { message: 'missing session' } })

    if (req.method === 'POST' && url.pathname === '/tools') {
      // The session's enabled tools (engine ids), for the plugin's check before any tool runs.
      const route = await this.opts.resolve(engineSession)
      return reply(res, 200, { tools: route === undefined ? null : [...route.allowedTools] })
    }

    const match = /^\/p\/(openai|anthropic|google|openai-compatible)(\/.*)$/.exec(url.pathname)
    if (!match || req.method !== 'POST') return reply(res, 404, { error: { message: 'unknown gateway route' } })
    const route = await this.opts.resolve(engineSession)
    if (!route || route.provider !== match[1]) return reply(res, 403, { error: { message: 'no running session for this request' } })
    await this.forward(req, res, route, match[2], url.search)
  }

  private async forward (req: IncomingMessage, res: ServerResponse, route: SessionRoute, rest: string, search: string): Promise<void> {
    const raw = await readBody(req, this.maxBodyBytes)
    let body: string
    try {
      body = JSON.stringify(rewriteBody(route, JSON.parse(raw.toString('utf8')) as Record<string, unknown>))
    } catch {
      return reply(res, 400, { error: { message: 'the engine sent a body that is not JSON' } })
    }
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (FORWARDED_REQUEST_HEADERS.has(name) && typeof value === 'string') headers[name] = value
    }
    Object.assign(headers, credentialHeaders(route))
    const abort = new AbortController()
    res.on('close', () => abort.abort())
    const target = upstreamUrl(route, rest, search)
    let upstream: Response
    try {
      upstream = await fetch(target, { method: 'POST', headers, body, signal: abort.signal })
    } catch (err) {
      if (abort.signal.aborted) return
      this.opts.log.warn({ err: (err as Error).message, host: target.host }, 'provider unreachable')
      return reply(res, 502, { error: { message: `provider unreachable: ${(err as Error).message}` } })
    }
    const responseHeaders: Record<string, string> = {}
    upstream.headers.forEach((value, name) => { if (!DROPPED_RESPONSE_HEADERS.has(name)) responseHeaders[name] = value })
    res.writeHead(upstream.status, responseHeaders)
    res.flushHeaders()
    if (!upstream.body) {
      res.end()
      return
    }
    try {
      await pipeline(Readable.fromWeb(upstream.body as import('node:stream/web').ReadableStream), res)
    } catch {
      res.destroy()
    }
  }
}

function reply (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function readBody (req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit) throw new Error('gateway request body too large')
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}
