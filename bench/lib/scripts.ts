import { randomUUID } from 'node:crypto'
import { byMarker, scenario, type Handler } from '../../test/support/model-server.js'
import type { CreateSessionBodyType, ToolName } from '../../schemas/session.js'

export const ENABLED_TOOLS: ToolName[] = ['read', 'write', 'edit', 'bash', 'glob', 'grep', 'list']

const words = (n: number, prefix: string): string =>
  Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`).join(' ') + '.'

/** Sessions are told apart by a marker in their prompt (one model server serves them all). */
export const SCRIPTS: Record<string, Handler> = {
  // The session: a tool printing 2,000 lines, then text.
  'BENCH-OVERHEAD': scenario([
    { toolCalls: [{ name: 'bash', args: { command: 'for i in $(seq 1 2000); do echo "line $i of the benchmark output"; done', description: 'print 2000 lines' } }] },
    { text: `Printed the lines. ${words(30, 'word')}` },
  ]),
  // Paced, so that every engine event is isolated (nothing to coalesce): the pipeline's own latency.
  'BENCH-LATENCY': scenario([
    { toolCalls: [{ name: 'bash', args: { command: 'for i in $(seq 1 20); do echo "tick $i"; sleep 0.05; done', description: 'tick' } }] },
    { text: `Ticked. ${words(20, 'word')}`, chunkDelayMs: 40 },
  ]),
  'BENCH-CANCEL': scenario([
    { toolCalls: [{ name: 'bash', args: { command: 'sleep 60', description: 'sleep' } }] },
    { text: 'never reached' },
  ]),
  // Runs ~5 s with steady output: what a pod holds while MAX_CONCURRENT_SESSIONS sessions work.
  'BENCH-MEMORY': scenario([
    { toolCalls: [{ name: 'bash', args: { command: 'for i in $(seq 1 100); do echo "memory line $i of a longer running tool"; sleep 0.05; done', description: 'work' } }] },
    { text: `Worked. ${words(40, 'word')}` },
  ]),
}

export const modelHandler = byMarker(SCRIPTS)

export function prompt (marker: string): string {
  return `${marker}: run the scripted task`
}

/** A create body for the sidecar, pointing the session at the scripted model server. */
export function createBody (marker: string, modelUrl: string): CreateSessionBodyType {
  return {
    session_id: randomUUID(),
    prompt: prompt(marker),
    model_config: {
      provider: 'openai-compatible',
      model: 'scripted-model',
      api_key: `sk-bench-${randomUUID()}`,
      temperature: 0.3,
      max_tokens: 2048,
      enabled_tools: ENABLED_TOOLS,
      api_endpoint: `${modelUrl}/v1`,
    },
  }
}
