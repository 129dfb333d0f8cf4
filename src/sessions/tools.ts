import type { ToolName } from '../../schemas/session.js'

/**
 * The engine's tool ids behind each contract tool name. A tool id of the engine's that is not
 * listed here (question, skill, websearch, …) is never enabled.
 */
export const ENGINE_TOOLS: Record<ToolName, readonly string[]> = {
  read: ['read'],
  write: ['write'],
  edit: ['edit', 'multiedit'],
  bash: ['bash'],
  glob: ['glob'],
  grep: ['grep'],
  list: ['list'],
  webfetch: ['webfetch'],
  todowrite: ['todowrite'],
  todoread: ['todoread'],
  task: ['task'],
  patch: ['patch', 'apply_patch'],
}

export const ALL_ENGINE_TOOLS: readonly string[] = [
  ...new Set([...Object.values(ENGINE_TOOLS).flat(), 'question', 'skill', 'websearch', 'codesearch', 'lsp', 'batch', 'invalid']),
]

export function engineToolIds (enabled: readonly ToolName[]): Set<string> {
  return new Set(enabled.flatMap(tool => ENGINE_TOOLS[tool]))
}

/** The full `tools` map for a prompt: every known engine tool, true only where enabled. */
export function promptToolMap (allowed: ReadonlySet<string>): Record<string, boolean> {
  return Object.fromEntries(ALL_ENGINE_TOOLS.map(id => [id, allowed.has(id)]))
}
