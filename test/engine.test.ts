import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { checkVersion, OPENCODE_VERSION, resolveOpencodeBin } from '../src/engine/binary.js'
import { EngineClient, EngineRequestError } from '../src/engine/client.js'
import { EngineEventStream, SseParser, toEngineEvent, type EngineEvent, type SseMessage } from '../src/engine/event-stream.js'
import { descendants, isAlive, readProc, type ProcInfo } from '../src/engine/process-tree.js'
import { EngineSupervisor, type EngineDownInfo, type EngineLogger, type EngineReadyInfo } from '../src/engine/supervisor.js'

const bin = resolveOpencodeBin()

interface LogLine { level: string, obj: object, msg: string }

function testLogger (lines: LogLine[]): EngineLogger {
  const log = (level: string) => (obj: object, msg: string): void => {
    lines.push({ level, obj, msg })
    if (process.env.ENGINE_TEST_LOG !== undefined) console.log(level, msg, JSON.stringify(obj))
  }
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }
}

async function tempWorkspace (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'engine-ws-'))
  execFileSync('git', ['init', '-q', dir])
  return dir
}

function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms).unref()),
  ])
}

async function waitFor (check: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

describe('engine binary', () => {
  it('accepts the pinned version and rejects any other', async () => {
    assert.equal(await checkVersion(bin, OPENCODE_VERSION), OPENCODE_VERSION)
    const dir = await mkdtemp(join(tmpdir(), 'engine-fake-'))
    try {
      const fake = join(dir, 'opencode')
      await writeFile(fake, '#!/bin/sh\necho 0.0.1\n')
      await chmod(fake, 0o755)
      await assert.rejects(checkVersion(fake, OPENCODE_VERSION), /version '0\.0\.1'.*requires exactly 1\.18\.33/)
      assert.equal(resolveOpencodeBin({ OPENCODE_BIN: fake }), fake)
      assert.throws(() => resolveOpencodeBin({ OPENCODE_BIN: join(dir, 'missing') }), /not an executable/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('SSE parsing', () => {
  it('handles CRLF, CR, split line ends, comments and multi-line data', () => {
    const parser = new SseParser()
    const input = ': hello\r\ndata: {"type":"a",\r\ndata: "properties":{"x":1}}\r\n\r\nid: 7\rdata:{"type":"b"}\r\r: keepalive\n\ndata: {"type":"c","id":"evt_1"}\r'
    const messages = []
    // One character at a time: every line end is split from its text and CR from LF.
    for (const ch of input) messages.push(...parser.push(ch))
    messages.push(...parser.push('\n\n'))
    assert.deepEqual(messages, [
      { data: '{"type":"a",\n"properties":{"x":1}}' },
      { data: '{"type":"b"}', id: '7' },
      { data: '{"type":"c","id":"evt_1"}', id: '7' },
    ])
    assert.deepEqual(messages.map(toEngineEvent), [
      { type: 'a', properties: { x: 1 } },
      { type: 'b', properties: {}, id: '7' },
      { type: 'c', properties: {}, id: 'evt_1' },
    ])
    assert.equal(toEngineEvent({ data: 'not json' }), undefined)
  })

  it('gives the same messages however the stream is cut into chunks', () => {
    // Lines of any length (long ones span many chunks, like a tool's output), any line ends.
    const line = fc.oneof(
      fc.constantFrom('', ': comment', 'event: x', 'id: 3'),
      fc.string({ unit: fc.constantFrom('a', 'b', ' ', ':', '{', '"', 'é'), maxLength: 300 }).map(v => `data: ${v}`)
    )
    const stream = fc.array(fc.tuple(line, fc.constantFrom('\n', '\r', '\r\n')), { maxLength: 40 })
      .map(lines => lines.map(([text, end]) => text + end).join('') + '\n\n')
    fc.assert(fc.property(stream, fc.array(fc.nat(), { maxLength: 20 }), (text, cuts) => {
      const whole = new SseParser().push(text)
      const parser = new SseParser()
      const pieces: SseMessage[] = []
      let at = 0
      for (const cut of [...cuts.map(c => c % (text.length + 1))].sort((x, y) => x - y)) {
        pieces.push(...parser.push(text.slice(at, cut)))
        at = cut
      }
      pieces.push(...parser.push(text.slice(at)))
      assert.deepEqual(pieces, whole)
    }), { numRuns: 500 })
  })
})

describe('engine event stream', () => {
  it('treats a silent stream as dead, reconnects and asks for a resync', async () => {
    const requests: Array<{ url: string, auth: string | undefined }> = []
    const responses: ServerResponse[] = []
    const server = createServer((req, res) => {
      requests.push({ url: req.url ?? '', auth: req.headers.authorization })
      responses.push(res)
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: {"id":"evt_1","type":"server.connected","properties":{}}\r\n\r\n')
      // Then silence: neither events nor heartbeats.
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    const client = new EngineClient({ baseUrl: `http://127.0.0.1:${port}`, directory: '/w s', password: 'pw' })
    const stream = new EngineEventStream({ client, staleMs: 300, minBackoffMs: 50 })
    const seen: string[] = []
    stream.on('event', event => seen.push(event.type))
    stream.on('disconnected', ({ reason }) => seen.push(`disconnected: ${reason}`))
    stream.on('reconnected', () => seen.push('reconnected'))
    try {
      await stream.start(2_000)
      assert.equal(stream.connected, true)
      await waitFor(() => seen.includes('reconnected'), 3_000, 'reconnect')
      assert.deepEqual(seen.slice(0, 4), ['server.connected', 'disconnected: no event or heartbeat for 300 ms', 'reconnected', 'server.connected'])
      assert.equal(requests[0].url, '/event?directory=%2Fw+s')
      assert.equal(requests[0].auth, `Basic ${Buffer.from('opencode:pw').toString('base64')}`)
    } finally {
      stream.stop()
      for (const res of responses) res.destroy()
      server.close()
    }
    assert.equal(stream.connected, false)
  })
})

describe('engine supervisor (real opencode)', () => {
  let workspace: string
  let stateDir: string
  let supervisor: EngineSupervisor
  const lines: LogLine[] = []
  const events: EngineEvent[] = []
  const downs: EngineDownInfo[] = []
  const readies: EngineReadyInfo[] = []
  let resyncs = 0
  const canary = `canary-${process.pid}`

  before(async () => {
    workspace = await tempWorkspace()
    stateDir = await mkdtemp(join(tmpdir(), 'engine-state-'))
    process.env.ENGINE_TEST_CANARY = canary
    supervisor = new EngineSupervisor({
      bin,
      workspaceDir: workspace,
      stateDir,
      configContent: JSON.stringify({ share: 'disabled', autoupdate: false }),
      logger: testLogger(lines),
      startTimeoutMs: 60_000,
      healthIntervalMs: 300,
      // Generous: a loaded CI machine must not look like a hung engine (the SIGSTOP test still ends it).
      healthTimeoutMs: 2_500,
      healthFailures: 3,
      minRestartBackoffMs: 100,
      maxRestartBackoffMs: 2_000,
      stopGraceMs: 3_000,
    })
    supervisor.on('event', event => events.push(event))
    supervisor.on('down', info => downs.push(info))
    supervisor.on('ready', info => readies.push(info))
    supervisor.on('resync', () => { resyncs++ })
  })

  after(async () => {
    delete process.env.ENGINE_TEST_CANARY
    await supervisor.stop()
    await rm(workspace, { recursive: true, force: true })
    await rm(stateDir, { recursive: true, force: true })
  })

  it('starts, warms the workspace and becomes ready', async () => {
    assert.equal(supervisor.state, 'stopped')
    supervisor.start()
    assert.equal(supervisor.state, 'starting')
    assert.equal(supervisor.notReadyReason, 'engine starting')
    await supervisor.waitReady(60_000)
    assert.equal(supervisor.state, 'ready')
    assert.equal(supervisor.notReadyReason, undefined)
    assert.ok(supervisor.client)
    assert.equal(readies.length, 1)
    console.log(`engine startup: ${readies[0].startupMs} ms (listening after ${readies[0].listeningMs} ms)`)
    assert.ok(supervisor.ripgrep === undefined || supervisor.ripgrep.endsWith('/rg'))
    assert.ok(events.some(e => e.type === 'server.connected'))
  })

  it('gives the engine a minimal, isolated environment and a seeded HOME', async () => {
    const pid = supervisor.pid
    assert.ok(pid)
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0').filter(Boolean)
    const env = new Map(environ.map(kv => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
    assert.ok(!environ.some(kv => kv.includes(canary)), 'the sidecar environment leaked into the engine')
    assert.equal(env.get('HOME'), join(stateDir, 'engine-home'))
    assert.equal(env.get('OPENCODE_DISABLE_MODELS_FETCH'), '1')
    assert.equal(env.get('OPENCODE_DISABLE_AUTOUPDATE'), '1')
    assert.ok(env.get('OPENCODE_PERMISSION')?.includes('"question":"deny"'))
    if (supervisor.ripgrep !== undefined) {
      assert.ok(env.get('PATH')?.split(':').includes(supervisor.ripgrep.slice(0, -3)))
    }
    const seeded = JSON.parse(await readFile(join(stateDir, 'engine-home', '.config', 'opencode', 'package.json'), 'utf8'))
    assert.deepEqual(seeded, { dependencies: { '@opencode-ai/plugin': OPENCODE_VERSION } })
    const proc = readProc(pid)
    assert.equal(proc?.pgid, pid, 'the engine leads its own process group')
  })

  it('answers the client calls the sidecar uses', async () => {
    const client = supervisor.client
    assert.ok(client)
    assert.deepEqual(await client.health(), { healthy: true, version: OPENCODE_VERSION })
    assert.equal((await client.paths()).directory, workspace)
    const session = await client.createSession('engine test', [{ permission: '*', pattern: '*', action: 'allow' }])
    assert.match(session.id, /^ses/)
    assert.equal((await client.getSession(session.id)).title, 'engine test')
    assert.deepEqual(await client.messages(session.id), [])
    assert.deepEqual(await client.sessionStatus(), {})
    assert.equal(await client.abort(session.id), true)
    const providers = await client.providers()
    assert.ok(Array.isArray(providers.providers))
    for (const provider of providers.providers) assert.equal(typeof provider.models, 'object')
    await assert.rejects(client.getSession('ses_doesnotexist'), (err: unknown) =>
      err instanceof EngineRequestError && err.kind === 'http' && err.status === 404)
    const wrong = new EngineClient({ baseUrl: client.baseUrl, directory: workspace, password: 'wrong' })
    await assert.rejects(wrong.health(), (err: unknown) => err instanceof EngineRequestError && err.status === 401)
    await waitFor(() => events.some(e => e.type === 'session.created' && (e.properties.info as { id?: string } | undefined)?.id === session.id), 5_000, 'session.created event')
  })

  it('delivers heartbeats on the event stream', async () => {
    // The engine beats every ~10 s.
    await waitFor(() => events.some(e => e.type === 'server.heartbeat'), 15_000, 'server.heartbeat')
  })

  it('restarts by itself after the engine is killed (SIGKILL)', async () => {
    const oldPid = supervisor.pid
    assert.ok(oldPid)
    const down = once(supervisor, 'down')
    const t0 = Date.now()
    process.kill(oldPid, 'SIGKILL')
    const [info] = await withTimeout(down, 10_000, 'down after SIGKILL') as [EngineDownInfo]
    assert.equal(info.pid, oldPid)
    assert.notEqual(supervisor.state, 'ready')
    assert.ok(supervisor.notReadyReason)
    await supervisor.waitReady(60_000)
    assert.notEqual(supervisor.pid, oldPid)
    assert.equal(readProc(oldPid), undefined)
    console.log(`restart after SIGKILL: ready again in ${Date.now() - t0} ms (${info.reason})`)
    assert.ok(await supervisor.client?.sessionStatus())
  })

  it('detects a hung engine (SIGSTOP) and restarts it', async () => {
    const oldPid = supervisor.pid
    assert.ok(oldPid)
    const down = once(supervisor, 'down')
    const t0 = Date.now()
    process.kill(oldPid, 'SIGSTOP')
    const [info] = await withTimeout(down, 15_000, 'down after SIGSTOP') as [EngineDownInfo]
    assert.match(info.reason, /hung/)
    console.log(`hang detected in ${Date.now() - t0} ms`)
    await supervisor.waitReady(60_000)
    assert.notEqual(supervisor.pid, oldPid)
    await waitFor(() => readProc(oldPid) === undefined, 5_000, 'the hung engine is gone')
    console.log(`restart after SIGSTOP: ready again in ${Date.now() - t0} ms`)
  })

  it('stop() leaves no process behind, not even one in its own session', async () => {
    const client = supervisor.client
    const pid = supervisor.pid
    assert.ok(client && pid)
    // A pty runs in its own session; `setsid` puts the inner sleep in yet another one.
    await client.request('POST', '/pty', { body: { command: '/bin/sh', args: ['-c', 'setsid sleep 300 & sleep 300'], cwd: workspace } })
    let tree: ProcInfo[] = []
    await waitFor(() => {
      tree = descendants(pid)
      return tree.filter(p => readFileCmd(p.pid) === 'sleep').length >= 2
    }, 10_000, 'the sleeps under the engine')
    assert.ok(tree.some(p => p.pgid !== pid), 'a descendant outside the engine\'s process group')
    const t0 = Date.now()
    await supervisor.stop()
    console.log(`stop: ${Date.now() - t0} ms, ${tree.length} descendants`)
    assert.equal(supervisor.state, 'stopped')
    assert.equal(readProc(pid), undefined)
    for (const proc of tree) assert.ok(!isAlive(proc), `descendant ${proc.pid} survived`)
    await assert.rejects(supervisor.waitReady(), /engine is stopped/)
    assert.equal(downs.length, 2, 'stop() is not a crash')
    assert.equal(resyncs, 0)
  })
})

function readFileCmd (pid: number): string | undefined {
  try {
    return execFileSync('cat', [`/proc/${pid}/comm`], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}
