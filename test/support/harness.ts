import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { parseSse, type SseEvent } from '../../src/conformance/checks.js'
import type { CreateSessionBodyType, SessionStatusType } from '../../schemas/session.js'
import { tempDirs, testConfig, type TempDirs } from './config.js'
import { startModelServer, type ModelServer } from './model-server.js'

export type StreamedEvent = SseEvent

/** The production app on a real socket, the real engine, and a scripted model server. */
export interface Harness {
  app: FastifyInstance
  url: string
  dirs: TempDirs
  model: ModelServer
  headers: Record<string, string>
  /** Every log line the sidecar wrote (at LOG_LEVEL, default error). */
  logs: string[]
  close: () => Promise<void>
}

export async function startHarness (env: Record<string, string> = {}, opts: { readyTimeoutMs?: number } = {}): Promise<Harness> {
  const dirs = tempDirs()
  const model = await startModelServer()
  const logs: string[] = []
  const logStream = new PassThrough()
  logStream.on('data', (chunk: Buffer) => logs.push(chunk.toString()))
  const app = await buildApp(testConfig(dirs, env), { logStream })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const headers: Record<string, string> = env.OPENCODE_SHARED_SECRET ? { authorization: `Bearer ${env.OPENCODE_SHARED_SECRET}` } : {}
  const close = async () => {
    await app.close()
    await model.close()
    dirs.cleanup()
  }
  try {
    await waitReady(url, opts.readyTimeoutMs ?? 90_000)
  } catch (err) {
    await close()
    throw err
  }
  return { app, url, dirs, model, headers, logs, close }
}

export async function waitReady (url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/ready`)
      if (res.status === 200) return
      last = await res.text()
    } catch (err) {
      last = (err as Error).message // not listening yet
    }
    await sleep(200)
  }
  throw new Error(`not ready within ${timeoutMs} ms: ${last}`)
}

export const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms))

/** A create body pointing the session at the scripted model server. */
export function scriptedSession (h: Harness, prompt: string, modelConfig: Partial<CreateSessionBodyType['model_config']> = {}, extra: Partial<CreateSessionBodyType> = {}): CreateSessionBodyType {
  const provider = modelConfig.provider ?? 'openai-compatible'
  const endpoint = provider === 'google' ? `${h.model.url}/v1beta` : `${h.model.url}/v1`
  return {
    session_id: randomUUID(),
    prompt,
    ...extra,
    model_config: {
      provider,
      model: 'scripted-model',
      api_key: `sk-test-${randomUUID()}`,
      temperature: 0.3,
      max_tokens: 2048,
      enabled_tools: ['read', 'write', 'edit', 'bash', 'glob', 'grep', 'list'],
      api_endpoint: endpoint,
      ...modelConfig,
    },
  }
}

export async function createSession (h: Harness, body: CreateSessionBodyType): Promise<SessionStatusType> {
  const res = await fetch(`${h.url}/sessions`, { method: 'POST', headers: { ...h.headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const json = await res.json() as SessionStatusType
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(json)}`)
  return json
}

export async function getStatus (h: Harness, id: string): Promise<SessionStatusType> {
  const res = await fetch(`${h.url}/sessions/${id}/status`, { headers: h.headers })
  return await res.json() as SessionStatusType
}

/** Reads the whole stream (it closes after the terminal event) and parses its events, heartbeats left out. */
export async function readStream (h: Harness, id: string, lastEventId?: number): Promise<StreamedEvent[]> {
  const headers: Record<string, string> = { ...h.headers, accept: 'text/event-stream' }
  if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId)
  const res = await fetch(`${h.url}/sessions/${id}/stream`, { headers, signal: AbortSignal.timeout(120_000) })
  if (res.status !== 200) throw new Error(`stream failed: ${res.status} ${await res.text()}`)
  return parseSse(await res.text()).filter(e => e.event !== 'heartbeat')
}

export { parseSse }

export async function cancelSession (h: Harness, id: string): Promise<Response> {
  return await fetch(`${h.url}/sessions/${id}`, { method: 'DELETE', headers: h.headers })
}

/** Polls the status until `until` holds. */
export async function waitStatus (h: Harness, id: string, until: (s: SessionStatusType) => boolean, timeoutMs = 60_000): Promise<SessionStatusType> {
  const deadline = Date.now() + timeoutMs
  let status = await getStatus(h, id)
  while (!until(status)) {
    if (Date.now() > deadline) throw new Error(`status condition not met: ${JSON.stringify(status)}`)
    await sleep(100)
    status = await getStatus(h, id)
  }
  return status
}
