/** Value at quantile `q` (0–1) of `values`, nearest-rank on a sorted copy. */
export function quantile (values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]
}

export const median = (values: readonly number[]): number => quantile(values, 0.5)

export function round (value: number, digits = 3): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `check` every `everyMs` until it returns a value other than undefined. */
export async function poll<T> (check: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 10, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`)
    await sleep(everyMs)
  }
}
