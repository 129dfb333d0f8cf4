import { invalidField } from '../errors.js'
import type { CreateSessionBodyType } from '../../schemas/session.js'

/** Rules the schema cannot express: cross-field requirements and what an endpoint URL may be. */
export function checkCreateRequest (body: CreateSessionBodyType): void {
  const { provider, api_endpoint: endpoint } = body.model_config
  if (endpoint !== undefined && endpoint !== null) checkEndpoint(endpoint)
  else if (provider === 'openai-compatible') {
    throw invalidField('model_config.api_endpoint', 'is required when provider is openai-compatible')
  }
}

function checkEndpoint (endpoint: string): void {
  const field = 'model_config.api_endpoint'
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    throw invalidField(field, 'must be an absolute http or https URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidField(field, 'must use http or https')
  if (url.username || url.password) throw invalidField(field, 'must not contain credentials (send the key as api_key)')
  if (url.hash) throw invalidField(field, 'must not contain a fragment')
}
