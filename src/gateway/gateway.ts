import { randomBytes } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
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
  /** A provider request with no byte from the provider for this long fails (fetch's 300 s). */
  upstreamIdleMs?: number
}

const FORWARDED_REQUEST_HEADERS = new Set(['content-type', 'accept', 'anthropic-beta', 'anthropic-version', 'openai-beta', 'user-agent'])
// Hop-by-hop: the engine's connection to the gateway is its own.
const DROPPED_RESPONSE_HEADERS = new Set(['transfer-encoding', 'connection', 'keep-alive'])

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
  private readonly upstreamIdleMs: number
  // Kept-alive provider connections are dropped after 4 s unused (fetch's default; sooner if the
  // provider announces a shorter keep-alive), before a provider is likely to close them itself.
  private readonly httpAgent = new http.Agent({ keepAlive: true, timeout: 4_000 })
  private readonly httpsAgent = new https.Agent({ keepAlive: true, timeout: 4_000 })

  constructor (private readonly opts: GatewayOptions) {
    this.maxBodyBytes = opts.maxBodyBytes ?? 64 * 1024 * 1024
    this.upstreamIdleMs = opts.upstreamIdleMs ?? 300_000
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
    this.httpAgent.destroy()
    this.httpsAgent.destroy()
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
    let body: Buffer
    try {
      body = Buffer.from(JSON.stringify(rewriteBody(route, JSON.parse(raw.toString('utf8')) as Record<string, unknown>)))
    } catch {
      return reply(res, 400, { error: { message: 'the engine sent a body that is not JSON' } })
    }
    const headers: Record<string, string | number> = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (FORWARDED_REQUEST_HEADERS.has(name) && typeof value === 'string') headers[name] = value
    }
    Object.assign(headers, credentialHeaders(route))
    headers['content-length'] = body.length
    const target = upstreamUrl(route, rest, search)
    const secure = target.protocol === 'https:'
    // node:http(s) with keep-alive, not fetch: the response's chunks (a model's tokens) are piped
    // to the engine as they come, with no WHATWG stream in between. The body passes as sent
    // (no accept-encoding is forwarded, so providers answer uncompressed).
    const upstream = (secure ? https : http).request(target, { method: 'POST', headers, agent: secure ? this.httpsAgent : this.httpAgent })
    // The engine went away (an abort): so does the provider request. (After a complete answer, the
    // socket goes back to the keep-alive pool instead.)
    res.on('close', () => { if (!res.writableFinished) upstream.destroy() })
    upstream.setTimeout(this.upstreamIdleMs, () => upstream.destroy(new Error(`no answer from the provider for ${this.upstreamIdleMs / 1000} s`)))
    await new Promise<void>(resolve => {
      upstream.on('error', err => {
        if (!res.headersSent && !res.destroyed) {
          this.opts.log.warn({ err: err.message, host: target.host }, 'provider unreachable')
          reply(res, 502, { error: { message: `provider unreachable: ${err.message}` } })
        } else {
          res.destroy()
        }
        resolve()
      })
      upstream.on('response', up => {
        const responseHeaders: Record<string, string | string[]> = {}
        for (const [name, value] of Object.entries(up.headers)) {
          if (value !== undefined && !DROPPED_RESPONSE_HEADERS.has(name)) responseHeaders[name] = value
        }
        res.writeHead(up.statusCode ?? 502, responseHeaders)
        res.flushHeaders()
        pipeline(up, res).then(resolve, () => {
          res.destroy()
          resolve()
        })
      })
      upstream.end(body)
    })
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
