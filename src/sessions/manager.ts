import type { ServerResponse } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import { ServiceError } from '../errors.js'
import type { CancelBodyType, CreateSessionBodyType, SessionStatusType } from '../../schemas/session.js'
import type { SessionService } from './service.js'
import { checkCreateRequest } from './validate.js'

export class SessionManager implements SessionService {
  constructor (private readonly config: Config, private readonly log: FastifyBaseLogger) {}

  async start (): Promise<void> {}

  notReadyReason (): string | null {
    return 'engine not available'
  }

  async create (request: CreateSessionBodyType): Promise<SessionStatusType> {
    checkCreateRequest(request)
    throw new ServiceError('not_ready', 'The OpenCode engine is not ready', undefined, 5)
  }

  status (sessionId: string): SessionStatusType {
    throw new ServiceError('not_found', `Session ${sessionId} not found`)
  }

  async cancel (sessionId: string): Promise<CancelBodyType> {
    throw new ServiceError('not_found', `Session ${sessionId} not found`)
  }

  stream (sessionId: string, _afterId: number, _res: ServerResponse): void {
    throw new ServiceError('not_found', `Session ${sessionId} not found`)
  }

  closeStreams (): void {}

  async close (): Promise<void> {}
}
