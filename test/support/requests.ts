import { randomUUID } from 'node:crypto'
import type { CreateSessionBodyType } from '../../schemas/session.js'

/** A valid create-session body; override any part. */
export function sessionBody (overrides: Partial<CreateSessionBodyType> = {}, modelConfig: Partial<CreateSessionBodyType['model_config']> = {}): CreateSessionBodyType {
  return {
    session_id: randomUUID(),
    prompt: 'Say hello',
    ...overrides,
    model_config: {
      provider: 'openai',
      model: 'gpt-4o-mini',
      api_key: 'sk-test-key',
      temperature: 0.2,
      max_tokens: 1024,
      enabled_tools: ['read', 'write', 'edit', 'bash'],
      ...modelConfig,
    },
  }
}

export const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
