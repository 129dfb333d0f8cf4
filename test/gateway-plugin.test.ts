import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { SESSION_HEADER, TOKEN_HEADER } from '../src/gateway/gateway.js'
import { pluginSource } from '../src/gateway/plugin.js'
import { tempDirs } from './support/config.js'

interface Hooks {
  event: (input: { event: { type: string, properties?: Record<string, unknown> } }) => Promise<void>
  'chat.headers': (input: { sessionID: string }, output: { headers: Record<string, string> }) => Promise<void>
  'tool.execute.before': (input: { sessionID: string, tool: string }) => Promise<void>
}

// The generated plugin, loaded as the engine loads it, against a stand-in for the gateway.
test('the engine plugin: tags model requests, asks once per session for its tools (ahead of the first tool call), refuses the others', async () => {
  const asked: string[] = []
  let failNext = 0
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)) }
    if (req.url === '/bootstrap') return reply(200, { token: 'tok' })
    assert.equal(req.url, '/tools')
    assert.equal(req.headers[TOKEN_HEADER], 'tok')
    const session = String(req.headers[SESSION_HEADER])
    asked.push(session)
    if (failNext > 0) {
      failNext--
      return reply(500, {})
    }
    reply(200, { tools: session === 'gone' ? null : ['bash', 'read'] })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const dirs = tempDirs()
  try {
    const file = path.join(dirs.root, 'plugin.mjs')
    writeFileSync(file, pluginSource(`http://127.0.0.1:${(server.address() as AddressInfo).port}`))
    const plugin = (await import(pathToFileURL(file).href)).default as { server: () => Promise<Hooks> }
    const hooks = await plugin.server()

    const output = { headers: {} as Record<string, string> }
    await hooks['chat.headers']({ sessionID: 'ses_a' }, output)
    assert.deepEqual(output.headers, { [TOKEN_HEADER]: 'tok', [SESSION_HEADER]: 'ses_a' })
    await hooks['tool.execute.before']({ sessionID: 'ses_a', tool: 'bash' })
    await hooks['tool.execute.before']({ sessionID: 'ses_a', tool: 'read' })
    await assert.rejects(hooks['tool.execute.before']({ sessionID: 'ses_a', tool: 'write' }), /"write" is not enabled/)
    await hooks['chat.headers']({ sessionID: 'ses_a' }, { headers: {} })
    assert.deepEqual(asked, ['ses_a'], 'one ask for the session, made by its first model request')

    // A session without a prior model request (a subagent's first tool call) asks then.
    await hooks['tool.execute.before']({ sessionID: 'ses_b', tool: 'read' })
    // "No running session" is not kept: asked again at the next call.
    await assert.rejects(hooks['tool.execute.before']({ sessionID: 'gone', tool: 'read' }), /no running session/)
    await assert.rejects(hooks['tool.execute.before']({ sessionID: 'gone', tool: 'read' }), /no running session/)
    // Once the engine session goes idle, its next tool call asks again (the sidecar may have ended it).
    await hooks.event({ event: { type: 'session.idle', properties: { sessionID: 'ses_a' } } })
    await hooks.event({ event: { type: 'message.updated', properties: {} } })
    await hooks['tool.execute.before']({ sessionID: 'ses_a', tool: 'bash' })
    await hooks['tool.execute.before']({ sessionID: 'ses_a', tool: 'bash' })

    // A failed ask is retried (once at once, then at the next call), never cached.
    failNext = 2
    await assert.rejects(hooks['tool.execute.before']({ sessionID: 'ses_c', tool: 'read' }), /tool check failed/)
    await hooks['tool.execute.before']({ sessionID: 'ses_c', tool: 'read' })
    assert.deepEqual(asked, ['ses_a', 'ses_b', 'gone', 'gone', 'ses_a', 'ses_c', 'ses_c', 'ses_c'])
  } finally {
    server.close()
    dirs.cleanup()
  }
})
