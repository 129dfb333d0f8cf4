import type { Provider } from '../../schemas/session.js'

/** The engine's provider id for each contract provider. */
export const ENGINE_PROVIDER: Record<Provider, string> = {
  openai: 'openai',
  anthropic: 'anthropic',
  google: 'google',
  'openai-compatible': 'ocs-compatible',
}

/**
 * The model id the engine is told for ids its bundled catalog does not know. The gateway puts
 * the session's real id on the wire, so any id the provider accepts works.
 */
export const PLACEHOLDER_MODEL = 'ocs-session-model'

const PLACEHOLDER_KEY = 'ocs-placeholder-key'

const placeholderModel = {
  name: 'Session model (set per session by opencode-server)',
  tool_call: true,
  temperature: true,
  reasoning: false,
  attachment: false,
  limit: { context: 200_000, output: 32_000 },
}

/**
 * The engine's whole configuration (OPENCODE_CONFIG_CONTENT). Every provider points at the
 * gateway with a placeholder key, so no key is ever in the engine's config or environment.
 */
export function engineConfig (gatewayUrl: string, pluginFile: string): Record<string, unknown> {
  const provider = (id: Provider, extra: Record<string, unknown> = {}) => ({
    ...extra,
    options: { baseURL: `${gatewayUrl}/p/${id}`, apiKey: PLACEHOLDER_KEY },
    models: { [PLACEHOLDER_MODEL]: placeholderModel },
  })
  return {
    $schema: 'https://opencode.ai/config.json',
    share: 'disabled',
    autoupdate: false,
    plugin: [`file://${pluginFile}`],
    enabled_providers: Object.values(ENGINE_PROVIDER),
    provider: {
      openai: provider('openai'),
      anthropic: provider('anthropic'),
      google: provider('google'),
      [ENGINE_PROVIDER['openai-compatible']]: provider('openai-compatible', { npm: '@ai-sdk/openai-compatible', name: 'OpenAI-compatible' }),
    },
  }
}
