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
    if (hit !== undefined && sameJson(hit.status, status)) return hit.body
    const body = Buffer.from(this.serialize(status))
    if (hit === undefined && this.cache.size >= this.max) this.cache.delete(this.cache.keys().next().value!)
    // A copy: the status may share objects with the session's record.
    this.cache.set(status.session_id, { status: copyJson(status), body })
    return body
  }
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
