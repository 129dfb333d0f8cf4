import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { bearerVerdict } from './auth.js'
import { UUID_PATTERN } from '../schemas/session.js'

/** A polled route's successful answer: its Fastify route pattern (the metric's label) and JSON body. */
export interface FastAnswer { route: string, body: Buffer }

export interface FastPathOptions {
  /** The app's request-id generator (shared with Fastify's genReqId, so ids never repeat). */
  requestId: () => string
  /** Records the request in the HTTP duration histogram, as the app's onResponse hook does. */
  observe: (method: string, route: string, statusCode: number, seconds: number) => void
  /** The shared secret guarding /sessions routes (undefined: open), as plugins/auth.ts checks it. */
  secret: string | undefined
}

/**
 * The probes and the status poll, answered straight from the HTTP server's request listener
 * before Fastify routes the request — only when the answer is a 200 the Fastify route would
 * give byte for byte (same body, same headers; checked in test/fast-path.test.ts). Everything
 * else — other methods, URLs with a query or a trailing slash, a request body, a missing or
 * wrong token, an unknown session — goes to Fastify, so errors, logging and validation have one
 * implementation. Why it exists: these routes are polled (the kubelet, the backend's status
 * loop) and Fastify's per-request machinery was most of their cost (bench/README.md).
 */
export class FastPath {
  private closing = false
  private readonly exact = new Map<string, FastAnswer>()
  private status?: (sessionId: string) => Buffer | undefined

  constructor (private readonly opts: FastPathOptions) {}

  /**
   * Puts this path in front of the Fastify handler of the server Fastify created (its one
   * `request` listener), so the server keeps everything Fastify set on it — timeouts, and the
   * extra bindings `listen` makes for a host with several addresses (`localhost`: 127.0.0.1 and
   * ::1; those are served by Fastify alone).
   */
  attach (server: http.Server): void {
    const listeners = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>
    if (listeners.length !== 1) throw new Error(`fast path: expected Fastify's one request listener, found ${listeners.length}`)
    const fastify = listeners[0]
    server.removeListener('request', fastify)
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!this.answer(req, res)) fastify.call(server, req, res)
    })
  }

  /** A GET route without parameters whose body never changes. */
  constant (url: string, body: unknown): void {
    this.exact.set(url, { route: url, body: Buffer.from(JSON.stringify(body)) })
  }

  /** GET /sessions/{id}/status: the serialized status, or undefined (unknown session). */
  sessionStatus (serialize: (sessionId: string) => Buffer | undefined): void {
    this.status = serialize
  }

  /** From Fastify's preClose on: answers carry `connection: close`, as Fastify's do while closing. */
  close (): void {
    this.closing = true
  }

  private answer (req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET') return false
    const started = performance.now()
    const headers = req.headers
    // A body on a GET is Fastify's business (it is not read here).
    if (headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined) return false
    const url = req.url ?? ''
    let answer = this.exact.get(url)
    if (answer === undefined && this.status !== undefined && url.length === STATUS_URL_LENGTH && url.startsWith('/sessions/') && url.endsWith('/status')) {
      const sessionId = url.slice(10, 46)
      if (!UUID.test(sessionId) || bearerVerdict(headers.authorization, this.opts.secret) !== 'ok') return false
      let body: Buffer | undefined
      try {
        body = this.status(sessionId)
      } catch {
        // (e.g. a stored record that does not serialize): Fastify answers, in the error shape,
        // and logs it — thrown here, in the server's listener, it would end the process.
        return false
      }
      if (body !== undefined) answer = { route: STATUS_ROUTE, body }
    }
    if (answer === undefined) return false
    const requestId = headers['x-request-id'] || this.opts.requestId()
    const out: http.OutgoingHttpHeaders = {
      'x-request-id': requestId,
      'content-type': 'application/json; charset=utf-8',
      'content-length': answer.body.length,
    }
    if (this.closing) out.connection = 'close'
    res.writeHead(200, out)
    res.end(answer.body)
    this.opts.observe('GET', answer.route, 200, (performance.now() - started) / 1000)
    return true
  }
}

export const STATUS_ROUTE = '/sessions/:sessionId/status'
const STATUS_URL_LENGTH = '/sessions/'.length + 36 + '/status'.length
const UUID = new RegExp(UUID_PATTERN)
