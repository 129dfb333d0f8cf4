import type { ServerResponse } from 'node:http'
import type { CancelBodyType, CreateSessionBodyType, SessionStatusType } from '../../schemas/session.js'

/** What the HTTP layer needs from the session core. Failures are ServiceErrors. */
export interface SessionService {
  create (request: CreateSessionBodyType): Promise<SessionStatusType>
  status (sessionId: string): SessionStatusType
  /** The status, or undefined for an unknown session. */
  findStatus (sessionId: string): SessionStatusType | undefined
  cancel (sessionId: string): Promise<CancelBodyType>
  /** Serves the session's event stream on a raw response (headers not yet sent). */
  stream (sessionId: string, afterId: number, res: ServerResponse): Promise<void>
  /** Null when the core can take sessions, else why not. */
  notReadyReason (): string | null
  /**
   * First step of shutdown: refuse new sessions, end running ones (cancelled, error.code
   * "shutdown", with their terminal event), then close every stream.
   */
  shutdown (): Promise<void>
  /** Last step: stop the engine and everything it started. */
  close (): Promise<void>
}
