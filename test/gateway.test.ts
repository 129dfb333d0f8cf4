import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { ProviderGateway, SESSION_HEADER, TOKEN_HEADER } from '../src/gateway/gateway.js'
import type { SessionRoute } from '../src/gateway/providers.js'
import { SELF_SIGNED_CERT, SELF_SIGNED_KEY } from './support/tls.js'

const KEY = 'sk-gateway-test'

// The gateway between a stand-in engine (this test) and a stand-in provider.
describe('provider gateway', () => {
  let provider: http.Server
  let providerUrl: string
  const sockets = new Set<unknown>()
  let onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void = () => {}
  let gateway: ProviderGateway
  let token: string
  let endpoint = ''
  const route = (): SessionRoute => ({ provider: 'openai-compatible', model: 'real-model', apiKey: KEY, temperature: 0.2, maxTokens: 100, apiEndpoint: endpoint, allowedTools: new Set(['bash']) })

  before(async () => {
    provider = http.createServer((req, res) => onRequest(req, res))
    provider.on('connection', socket => sockets.add(socket))
    provider.listen(0, '127.0.0.1')
    await once(provider, 'listening')
    providerUrl = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/v1`
    gateway = new ProviderGateway({ resolve: async id => id === 'ses_1' ? route() : undefined, log: pino({ level: 'silent' }), upstreamIdleMs: 500 })
    await gateway.start()
    token = (await (await fetch(`${gateway.url}/bootstrap`, { method: 'POST' })).json() as { token: string }).token
  })
  after(async () => {
    await gateway.close()
    provider.closeAllConnections()
    provider.close()
  })

  function engineRequest (body: unknown, onResponse?: (res: http.IncomingMessage, req: http.ClientRequest) => void): Promise<{ status: number, headers: http.IncomingHttpHeaders, body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${gateway.url}/p/openai-compatible/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [TOKEN_HEADER]: token, [SESSION_HEADER]: 'ses_1' },
      }, res => {
        onResponse?.(res, req)
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { text += chunk })
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(JSON.stringify(body))
    })
  }

  test('forwards with the session\'s key and model, streams the answer back chunk by chunk, reuses its connection', async () => {
    endpoint = providerUrl
    const seen: Array<{ auth: string | undefined, body: Record<string, unknown> }> = []
    let release!: () => void
    onRequest = (req, res) => {
      let text = ''
      req.on('data', (c: Buffer) => { text += c })
      req.on('end', () => {
        seen.push({ auth: req.headers.authorization, body: JSON.parse(text) as Record<string, unknown> })
        res.writeHead(200, { 'content-type': 'text/event-stream', 'x-provider': 'yes' })
        res.write('data: first\n\n')
        // The rest only once the engine has seen the first chunk.
        release = () => res.end('data: [DONE]\n\n')
      })
    }
    let firstChunkBeforeEnd = false
    const answer = await engineRequest({ model: 'ocs-session-model', messages: [], stream: true }, res => {
      res.once('data', (chunk: Buffer) => {
        firstChunkBeforeEnd = String(chunk).includes('data: first')
        release()
      })
    })
    assert.equal(answer.status, 200)
    assert.ok(firstChunkBeforeEnd, 'the first chunk arrived while the provider was still answering')
    assert.equal(answer.body, 'data: first\n\ndata: [DONE]\n\n')
    assert.equal(answer.headers['x-provider'], 'yes')
    assert.equal(seen[0].auth, `Bearer ${KEY}`)
    assert.equal(seen[0].body.model, 'real-model')
    const before = sockets.size
    onRequest = (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}') }
    assert.equal((await engineRequest({ model: 'x', messages: [] })).body, '{"ok":true}')
    assert.equal(sockets.size, before, 'the second request reused the kept-alive connection')
  })

  test('an unreachable provider is a 502 the engine can report', async () => {
    const closed = http.createServer()
    closed.listen(0, '127.0.0.1')
    await once(closed, 'listening')
    endpoint = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/v1`
    await new Promise(resolve => closed.close(resolve))
    const answer = await engineRequest({ model: 'x', messages: [] })
    assert.equal(answer.status, 502)
    assert.match((JSON.parse(answer.body) as { error: { message: string } }).error.message, /provider unreachable: .*ECONNREFUSED/)
  })

  test('a provider that goes silent is given up on (a 502 before its answer starts; the answer cut after)', async () => {
    endpoint = providerUrl
    onRequest = (req) => { req.resume() } // never answers
    const silent = await engineRequest({ model: 'x', messages: [] })
    assert.equal(silent.status, 502)
    assert.match((JSON.parse(silent.body) as { error: { message: string } }).error.message, /no answer from the provider for 0.5 s/)
    onRequest = (req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: partial\n\n') // then silence
    }
    await assert.rejects(engineRequest({ model: 'x', messages: [] }), /aborted|socket hang up|ECONNRESET/)
  })

  test('an https provider is reached over TLS, and its certificate is verified', async () => {
    const tls = https.createServer({ key: SELF_SIGNED_KEY, cert: SELF_SIGNED_CERT }, (_req, res) => { res.end('{}') })
    tls.listen(0, '127.0.0.1')
    await once(tls, 'listening')
    let handshakes = 0
    tls.on('secureConnection', () => handshakes++)
    try {
      endpoint = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/v1`
      const answer = await engineRequest({ model: 'x', messages: [] })
      assert.equal(answer.status, 502)
      assert.match((JSON.parse(answer.body) as { error: { message: string } }).error.message, /provider unreachable: .*self-signed certificate/)
      assert.equal(handshakes, 0, 'no request went to a provider whose certificate is not trusted')
    } finally {
      tls.close()
    }
  })

  test('when the engine goes away mid-answer, the provider request is closed too', async () => {
    endpoint = providerUrl
    const upstreamClosed = new Promise<void>(resolve => {
      onRequest = (req, res) => {
        req.resume()
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('data: partial\n\n')
        res.on('close', () => resolve())
      }
    })
    await engineRequest({ model: 'x', messages: [] }, (res, req) => res.once('data', () => req.destroy())).catch(() => {})
    await upstreamClosed
  })
})
