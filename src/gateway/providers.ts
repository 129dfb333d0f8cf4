import type { Provider } from '../../schemas/session.js'

/** What the gateway needs to forward one provider request for a session. */
export interface SessionRoute {
  provider: Provider
  model: string
  apiKey: string
  temperature: number
  maxTokens: number
  apiEndpoint?: string
  modelVersion?: string
  /** Engine tool ids the model may be offered. */
  allowedTools: ReadonlySet<string>
}

const DEFAULT_BASE: Record<Provider, string> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com/v1',
  google: 'https://generativelanguage.googleapis.com/v1beta',
  'openai-compatible': '',
}

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * The upstream URL for a request the engine sent to `<gateway>/p/<provider><rest>`.
 * `model_version` is the provider's API version: the `api-version` query parameter for the
 * OpenAI shapes (as Azure OpenAI wants it), the path version for Google (default v1beta).
 */
export function upstreamUrl (route: SessionRoute, rest: string, search: string): URL {
  let base = route.apiEndpoint ?? DEFAULT_BASE[route.provider]
  if (route.provider === 'google' && !route.apiEndpoint && route.modelVersion) {
    base = `https://generativelanguage.googleapis.com/${route.modelVersion}`
  }
  let path = rest
  if (route.provider === 'google') {
    // The engine asks for its placeholder model; the session's real model goes in the path.
    path = path.replace(/\/models\/[^/:]+/, `/models/${encodeURIComponent(route.model)}`)
  }
  const url = new URL(base.replace(/\/+$/, '') + path + search)
  if ((route.provider === 'openai' || route.provider === 'openai-compatible') && route.modelVersion) {
    url.searchParams.set('api-version', route.modelVersion)
  }
  return url
}

/** The request headers that carry the key (and the API version, for Anthropic). */
export function credentialHeaders (route: SessionRoute): Record<string, string> {
  switch (route.provider) {
    case 'anthropic': return { 'x-api-key': route.apiKey, ...(route.modelVersion ? { 'anthropic-version': route.modelVersion } : {}) }
    case 'google': return { 'x-goog-api-key': route.apiKey }
    default: return { authorization: `Bearer ${route.apiKey}` }
  }
}

function toolName (tool: unknown): string | undefined {
  if (!isObject(tool)) return undefined
  if (typeof tool.name === 'string') return tool.name
  if (isObject(tool.function) && typeof tool.function.name === 'string') return tool.function.name
  return undefined
}

function filterTools (body: Json, allowed: ReadonlySet<string>): void {
  if (!Array.isArray(body.tools)) return
  const tools = body.tools.filter(t => {
    const name = toolName(t)
    return name === undefined ? !isObject(t) || t.type !== 'function' : allowed.has(name)
  })
  if (tools.length) body.tools = tools
  else {
    delete body.tools
    delete body.tool_choice
  }
}

function filterGoogleTools (body: Json, allowed: ReadonlySet<string>): void {
  if (!Array.isArray(body.tools)) return
  const tools = body.tools.map(t => {
    if (!isObject(t) || !Array.isArray(t.functionDeclarations)) return t
    return { ...t, functionDeclarations: t.functionDeclarations.filter(d => allowed.has(toolName(d) ?? '')) }
  }).filter(t => !isObject(t) || !Array.isArray(t.functionDeclarations) || t.functionDeclarations.length > 0)
  if (tools.length) body.tools = tools
  else {
    delete body.tools
    delete body.toolConfig
  }
}

/**
 * Applies the session's settings to the body the engine built: the real model id, temperature,
 * output limit, and only the enabled tools. Done here, on the wire, so it holds whatever the
 * engine's catalog knows about the model.
 */
export function rewriteBody (route: SessionRoute, body: Json): Json {
  const out: Json = { ...body }
  switch (route.provider) {
    case 'google': {
      out.generationConfig = { ...(isObject(out.generationConfig) ? out.generationConfig : {}), temperature: route.temperature, maxOutputTokens: route.maxTokens }
      filterGoogleTools(out, route.allowedTools)
      return out
    }
    case 'anthropic':
      out.model = route.model
      out.temperature = route.temperature
      out.max_tokens = route.maxTokens
      break
    case 'openai':
      out.model = route.model
      out.temperature = route.temperature
      out.max_output_tokens = route.maxTokens
      break
    case 'openai-compatible':
      out.model = route.model
      out.temperature = route.temperature
      if ('max_completion_tokens' in out) out.max_completion_tokens = route.maxTokens
      else out.max_tokens = route.maxTokens
      break
  }
  filterTools(out, route.allowedTools)
  return out
}
