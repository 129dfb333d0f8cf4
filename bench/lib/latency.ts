import type { EngineEvent } from '../../src/engine/event-stream.js'
import type { SseFrame } from './sse.js'

interface Sample { progress: number, t: number }

/**
 * A sample over 5 ms, with the time since the engine's previous event of the same stream, and when
 * the engine's event was seen and the sidecar's frame arrived (epoch ms, to line up with the
 * sidecar's GC pauses).
 */
export interface SlowSample { kind: string, latency_ms: number, engine_gap_ms: number | null, engine_at: number, sidecar_at: number }

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null

/**
 * Pairs what the engine's /event stream showed with what a sidecar SSE client received, by content:
 * a tool call, a tool's output up to N characters, a tool result, the assistant's text up to N
 * characters, and session.idle → complete. Times are performance.now() in this process for both.
 */
export class LatencyTracker {
  readonly #engine = new Map<string, Sample[]>()
  readonly #sidecar = new Map<string, Sample[]>()
  readonly #roles = new Map<string, string>()
  readonly #partTypes = new Map<string, string>()
  readonly #textLen = new Map<string, number>()
  readonly #toolOut = new Map<string, number>()
  #sidecarText = 0
  /** Engine events before this time are ignored (the SSE client was not connected yet). */
  since = Number.POSITIVE_INFINITY

  #record (map: Map<string, Sample[]>, key: string, progress: number, t: number): void {
    const list = map.get(key) ?? []
    if (list.length > 0 && list[list.length - 1].progress >= progress) return
    list.push({ progress, t })
    map.set(key, list)
  }

  engineEvent (event: EngineEvent, t: number): void {
    const p = isObject(event.properties) ? event.properties : {}
    switch (event.type) {
      case 'message.updated':
        if (isObject(p.info) && typeof p.info.id === 'string' && typeof p.info.role === 'string') this.#roles.set(p.info.id, p.info.role)
        break
      case 'message.part.updated': {
        const part = p.part
        if (!isObject(part) || typeof part.id !== 'string' || typeof part.type !== 'string') break
        this.#partTypes.set(part.id, part.type)
        if (part.type === 'tool' && typeof part.callID === 'string' && isObject(part.state) && part.state.status !== 'pending') {
          const state = part.state
          this.#record(this.#engine, `call:${part.callID}`, 1, t)
          const output = isObject(state.metadata) ? state.metadata.output : undefined
          if (typeof output === 'string' && output.length > 0) this.#record(this.#engine, `out:${part.callID}`, output.length, t)
          if (state.status === 'completed' || state.status === 'error') this.#record(this.#engine, `result:${part.callID}`, 1, t)
        } else if (part.type === 'text' && typeof part.text === 'string' && part.synthetic !== true &&
          typeof part.messageID === 'string' && this.#roles.get(part.messageID) === 'assistant') {
          this.#textLen.set(part.id, Math.max(this.#textLen.get(part.id) ?? 0, part.text.length))
          this.#record(this.#engine, 'text', this.#sum(), t)
        }
        break
      }
      case 'message.part.delta':
        if (p.field === 'text' && typeof p.delta === 'string' && typeof p.partID === 'string' && typeof p.messageID === 'string' &&
          this.#partTypes.get(p.partID) === 'text' && this.#roles.get(p.messageID) === 'assistant') {
          this.#textLen.set(p.partID, (this.#textLen.get(p.partID) ?? 0) + p.delta.length)
          this.#record(this.#engine, 'text', this.#sum(), t)
        }
        break
      case 'session.idle':
        this.#record(this.#engine, 'idle', 1, t)
        break
    }
  }

  #sum (): number {
    let total = 0
    for (const n of this.#textLen.values()) total += n
    return total
  }

  sidecarFrame (frame: SseFrame): void {
    if (frame.event === 'heartbeat') return
    const data = JSON.parse(frame.data) as Record<string, unknown>
    const callId = typeof data.call_id === 'string' ? data.call_id : ''
    switch (frame.event) {
      case 'tool_call': this.#record(this.#sidecar, `call:${callId}`, 1, frame.t); break
      case 'tool_result': this.#record(this.#sidecar, `result:${callId}`, 1, frame.t); break
      case 'complete': this.#record(this.#sidecar, 'idle', 1, frame.t); break
      case 'output': {
        const text = typeof data.text === 'string' ? data.text : ''
        if (data.source === 'tool') {
          const n = (this.#toolOut.get(callId) ?? 0) + text.length
          this.#toolOut.set(callId, n)
          this.#record(this.#sidecar, `out:${callId}`, n, frame.t)
        } else {
          this.#sidecarText += text.length
          this.#record(this.#sidecar, 'text', this.#sidecarText, frame.t)
        }
        break
      }
    }
  }

  /** Latencies (ms) per kind: tool_call, tool_output, tool_result, text, idle_to_complete; and misses. */
  results (): { byKind: Record<string, number[]>, isolated: number[], unmatched: number, slow: SlowSample[] } {
    const byKind: Record<string, number[]> = { tool_call: [], tool_output: [], tool_result: [], text: [], idle_to_complete: [] }
    const isolated: number[] = []
    const slow: SlowSample[] = []
    let unmatched = 0
    for (const [key, samples] of this.#engine) {
      const kind = key === 'idle' ? 'idle_to_complete' : key === 'text' ? 'text' : key.startsWith('call:') ? 'tool_call' : key.startsWith('out:') ? 'tool_output' : 'tool_result'
      const seen = this.#sidecar.get(key) ?? []
      samples.forEach((sample, i) => {
        if (sample.t < this.since) return
        const match = seen.find(s => s.progress >= sample.progress)
        if (match === undefined) {
          unmatched++
          return
        }
        byKind[kind].push(match.t - sample.t)
        const gap = i > 0 ? sample.t - samples[i - 1].t : Number.POSITIVE_INFINITY
        // Not within the sidecar's 20 ms text-coalescing window of the previous event of its stream.
        if (kind !== 'idle_to_complete' && gap >= 20) isolated.push(match.t - sample.t)
        if (kind !== 'idle_to_complete' && match.t - sample.t > 5) {
          slow.push({
            kind,
            latency_ms: match.t - sample.t,
            engine_gap_ms: i > 0 ? sample.t - samples[i - 1].t : null,
            engine_at: performance.timeOrigin + sample.t,
            sidecar_at: performance.timeOrigin + match.t,
          })
        }
      })
    }
    return { byKind, isolated, unmatched, slow }
  }
}
