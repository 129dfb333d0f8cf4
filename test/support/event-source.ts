import type { EventSource } from 'eventsource'
import { isTerminal, SESSION_EVENT_TYPES } from '../../src/events/types.js'

export interface ContractEvent { id: number, event: string, data: Record<string, unknown> }

/**
 * Hands every contract event an EventSource receives to `onEvent`; resolves and closes it after
 * the terminal event. (The contract's `error` event shares its name with EventSource's own
 * connection errors; only the contract's carry data.)
 */
export function onContractEvents (es: EventSource, onEvent: (event: ContractEvent) => void): Promise<void> {
  return new Promise((resolve) => {
    for (const type of SESSION_EVENT_TYPES) {
      es.addEventListener(type, (message) => {
        if (typeof message.data !== 'string') return
        const data = JSON.parse(message.data) as Record<string, unknown>
        onEvent({ id: Number(message.lastEventId), event: message.type, data })
        if (isTerminal(type, data)) {
          es.close()
          resolve()
        }
      })
    }
  })
}
