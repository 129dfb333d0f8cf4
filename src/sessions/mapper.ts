import path from 'node:path'

/** The subset of an engine part the mapping reads (see shared/opencode-engine.md). */
export interface EnginePart {
  id: string
  sessionID: string
  messageID: string
  type: string
  text?: string
  synthetic?: boolean
  tool?: string
  callID?: string
  state?: {
    status?: string
    input?: Record<string, unknown>
    output?: string
    title?: string
    error?: string
    metadata?: Record<string, unknown>
    time?: { start?: number, end?: number }
  }
  files?: string[]
  tokens?: { input?: number, output?: number }
}

export type Emit = (event: 'output' | 'tool_call' | 'tool_result', data: Record<string, unknown>) => void

interface ToolProgress {
  called: boolean
  done: boolean
  /** The engine's cumulative output as last seen (what has been sent of it). */
  seen: string
}

/** What a tool's console output stream says where the engine dropped output it never showed. */
export const ELIDED_MARKER = '\n[… output elided by the engine …]\n'
const ANCHOR = 256

/**
 * The new part of a tool's cumulative console output. The engine sends the output so far, but
 * past about 30,000 characters it keeps only a window (head … tail) that moves on: then the new
 * text is what follows the last sent text inside the new window, and when the window moved past
 * unseen output, the gap is marked rather than hidden.
 */
export function newToolOutput (seen: string, current: string): string {
  if (current.startsWith(seen)) return current.slice(seen.length)
  if (current === seen) return ''
  const anchor = seen.slice(-ANCHOR)
  const at = anchor ? current.lastIndexOf(anchor) : -1
  if (at >= 0) return current.slice(at + anchor.length)
  return ELIDED_MARKER + current.slice(sharedPrefix(seen, current))
}

function sharedPrefix (a: string, b: string): number {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return i
}

/** Contract `output` text from the agent arrives at most this often per source. */
export const COALESCE_MS = 20

/**
 * Turns the parts of one session's assistant messages (its subagents' included) into contract
 * events. Idempotent for full part states: replaying a part after a reconnect emits only what
 * was not emitted yet, so reconciling from the engine's messages loses and duplicates nothing.
 */
export class EventMapper {
  private readonly roles = new Map<string, string>()
  private readonly waiting = new Map<string, EnginePart[]>()
  private readonly partTypes = new Map<string, string>()
  private readonly textSent = new Map<string, number>()
  private readonly tools = new Map<string, ToolProgress>()
  private readonly countedSteps = new Set<string>()
  /** Assistant text per message (by part, in order), for the final message. */
  private readonly texts = new Map<string, Map<string, string>>()
  private pendingText = ''
  private lastTextAt = 0
  private flushTimer?: NodeJS.Timeout
  readonly files = new Set<string>()
  readonly usage = { input_tokens: 0, output_tokens: 0 }

  constructor (private readonly emit: Emit, private readonly workspaceDir: string) {}

  /** `message.updated`: parts wait until their message is known to be the assistant's. */
  message (id: string, role: string): void {
    if (this.roles.has(id)) return
    this.roles.set(id, role)
    const parts = this.waiting.get(id)
    this.waiting.delete(id)
    if (role === 'assistant') for (const part of parts ?? []) this.part(part)
  }

  /** `message.part.updated`, or a part read back from the engine's messages. */
  part (part: EnginePart): void {
    this.partTypes.set(part.id, part.type)
    const role = this.roles.get(part.messageID)
    if (role === undefined) {
      const list = this.waiting.get(part.messageID) ?? []
      list.push(part)
      this.waiting.set(part.messageID, list)
      return
    }
    if (role !== 'assistant') return
    switch (part.type) {
      case 'text':
        if (part.text !== undefined && !part.synthetic) {
          if (part.text.length >= (this.texts.get(part.messageID)?.get(part.id)?.length ?? 0)) this.remember(part.messageID, part.id, part.text)
          this.textUpTo(part.id, part.text)
        }
        break
      case 'tool': this.tool(part); break
      case 'step-finish':
        if (!this.countedSteps.has(part.id)) {
          this.countedSteps.add(part.id)
          this.usage.input_tokens += part.tokens?.input ?? 0
          this.usage.output_tokens += part.tokens?.output ?? 0
        }
        break
      case 'patch': for (const file of part.files ?? []) this.addFile(file); break
    }
  }

  /** `message.part.delta` for a text field. */
  delta (messageID: string, partID: string, delta: string): void {
    if (this.roles.get(messageID) !== 'assistant' || this.partTypes.get(partID) !== 'text') return
    this.textSent.set(partID, (this.textSent.get(partID) ?? 0) + delta.length)
    this.remember(messageID, partID, (this.texts.get(messageID)?.get(partID) ?? '') + delta)
    this.queueText(delta)
  }

  /** The text of the newest assistant message that has any: the agent's final answer. */
  finalMessage (): string {
    let last = ''
    for (const parts of this.texts.values()) {
      const text = [...parts.values()].join('')
      if (text) last = text
    }
    return last
  }

  private remember (messageID: string, partID: string, text: string): void {
    let parts = this.texts.get(messageID)
    if (!parts) {
      parts = new Map()
      this.texts.set(messageID, parts)
    }
    parts.set(partID, text)
  }

  addFile (file: string): void {
    const relative = path.isAbsolute(file) ? path.relative(this.workspaceDir, file) : path.normalize(file)
    if (relative && !relative.startsWith('..') && !path.isAbsolute(relative)) this.files.add(relative.split(path.sep).join('/'))
  }

  /** Sends any coalesced text now (before another event, and at the end). */
  flush (): void {
    if (this.flushTimer) clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    if (!this.pendingText) return
    const text = this.pendingText
    this.pendingText = ''
    this.lastTextAt = Date.now()
    this.emit('output', { type: 'stdout', text, source: 'assistant' })
  }

  close (): void {
    this.flush()
  }

  private textUpTo (partID: string, text: string): void {
    const sent = this.textSent.get(partID) ?? 0
    if (text.length <= sent) return
    this.textSent.set(partID, text.length)
    this.queueText(text.slice(sent))
  }

  private queueText (text: string): void {
    this.pendingText += text
    const wait = this.lastTextAt + COALESCE_MS - Date.now()
    if (wait <= 0) return this.flush()
    this.flushTimer ??= setTimeout(() => this.flush(), wait)
  }

  private tool (part: EnginePart): void {
    const state = part.state
    const status = state?.status
    if (!state || !part.callID || !part.tool || status === 'pending') return
    const progress = this.tools.get(part.callID) ?? { called: false, done: false, seen: '' }
    this.tools.set(part.callID, progress)
    if (progress.done) return
    this.flush()
    const base = { tool: part.tool, call_id: part.callID }
    if (!progress.called) {
      progress.called = true
      this.emit('tool_call', { ...base, args: state.input ?? {} })
    }
    const streamed = typeof state.metadata?.output === 'string' ? state.metadata.output : undefined
    if (streamed !== undefined && streamed !== progress.seen) {
      const text = newToolOutput(progress.seen, streamed)
      if (text) this.emit('output', { type: 'stdout', text, source: 'tool', ...base })
      progress.seen = streamed
    }
    if (status !== 'completed' && status !== 'error') return
    progress.done = true
    const filePath = state.input?.filePath
    if (status === 'completed' && typeof filePath === 'string' && ['write', 'edit', 'multiedit', 'patch', 'apply_patch'].includes(part.tool)) this.addFile(filePath)
    const start = state.time?.start
    const end = state.time?.end
    const result: Record<string, unknown> = { output: state.output ?? '' }
    if (state.title) result.title = state.title
    if (state.metadata) {
      // The engine's bash metadata repeats the whole output (tens of KB): kept once, in `output`.
      const { output: streamedOutput, ...rest } = state.metadata
      const metadata = streamedOutput !== undefined && streamedOutput === state.output ? rest : state.metadata
      if (Object.keys(metadata).length > 0) result.metadata = metadata
    }
    if (status === 'error') result.error = state.error ?? 'tool failed'
    this.emit('tool_result', {
      ...base,
      status,
      result,
      duration_ms: start && end && end >= start ? Math.round(end - start) : 0,
    })
  }
}
