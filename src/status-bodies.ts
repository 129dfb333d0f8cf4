import type { SessionStatusType } from '../schemas/session.js'

/**
 * Serialized status bodies, reused while the status they were made from is unchanged: a polled
 * session's status changes a few times a second at most, and serializing it (escaping, date
 * checks, flattening the string for the socket) was a sixth of the status route's cost
 * (bench/README.md). The check is made on the status itself, field by field, not on a version
 * kept by whoever changes a session: nothing that changes can be missed.
 */
export class StatusBodies {
  private readonly cache = new Map<string, { status: SessionStatusType, body: Buffer }>()

  constructor (private readonly serialize: (status: SessionStatusType) => string, private readonly max = 256) {}

  body (status: SessionStatusType): Buffer {
    const hit = this.cache.get(status.session_id)
    if (hit !== undefined && sameStatus(hit.status, status)) return hit.body
    const body = Buffer.from(this.serialize(status))
    if (hit === undefined && this.cache.size >= this.max) this.cache.delete(this.cache.keys().next().value!)
    // A copy: the status may share objects with the session's record.
    this.cache.set(status.session_id, { status: copyJson(status), body })
    return body
  }
}

type Same = (a: SessionStatusType, b: SessionStatusType) => boolean

/**
 * One comparison per field of a status (TypeScript rejects a missing or unknown field), each
 * reading its field by name: scalars by `===`, the four nested values deeply. Walking the whole
 * status's keys instead (`sameJson`) made the polled status route's cache check cost several
 * times as much — a keyed read per field, the key changing every time.
 */
const SAME: { [K in keyof SessionStatusType]-?: Same } = {
  session_id: (a, b) => a.session_id === b.session_id,
  status: (a, b) => a.status === b.status,
  progress: (a, b) => a.progress === b.progress,
  created_at: (a, b) => a.created_at === b.created_at,
  started_at: (a, b) => a.started_at === b.started_at,
  updated_at: (a, b) => a.updated_at === b.updated_at,
  finished_at: (a, b) => a.finished_at === b.finished_at,
  cancelled_at: (a, b) => a.cancelled_at === b.cancelled_at,
  model: (a, b) => sameJson(a.model, b.model),
  last_event_id: (a, b) => a.last_event_id === b.last_event_id,
  final_message: (a, b) => a.final_message === b.final_message,
  files_modified: (a, b) => sameJson(a.files_modified, b.files_modified),
  error: (a, b) => sameJson(a.error, b.error),
  usage: (a, b) => sameJson(a.usage, b.usage),
  stream_url: (a, b) => a.stream_url === b.stream_url,
}
const SAME_FIELDS: readonly Same[] = Object.values(SAME)

/** Deep equality of two statuses: the answer of `sameJson` on the schema's fields, cheaper. */
export function sameStatus (a: SessionStatusType, b: SessionStatusType): boolean {
  for (let i = 0; i < SAME_FIELDS.length; i++) if (!SAME_FIELDS[i](a, b)) return false
  return true
}

/** A deep copy of a JSON value (a tenth of `structuredClone`'s cost for a status: a miss is cheap too). */
function copyJson<T> (value: T): T {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map(copyJson) as T
  const out: Record<string, unknown> = {}
  for (const key in value) out[key] = copyJson((value as Record<string, unknown>)[key])
  return out as T
}

/** Deep equality of JSON values (what serialization sees); `util.isDeepStrictEqual` checks every kind of value and costs about 4 times as much per poll. */
export function sameJson (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false
    return true
  }
  if (Array.isArray(b)) return false
  const x = a as Record<string, unknown>
  const y = b as Record<string, unknown>
  for (const key in x) if (!sameJson(x[key], y[key])) return false
  for (const key in y) if (!(key in x)) return false
  return true
}
