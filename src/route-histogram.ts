import type { MetricValueWithName } from 'prom-client'

interface Series {
  labels: Record<string, string>
  /** Per-bucket counts (not cumulative); the last slot is +Inf only. */
  counts: number[]
  sum: number
  count: number
}

/**
 * The HTTP request-duration histogram. Observed on every request, polls and probes included, so
 * it is kept lean: one Map lookup by a concatenated key and a bucket scan, where prom-client's
 * `Histogram.observe` converts, validates and hashes its label object on every call. It renders
 * exactly as a prom-client histogram (checked in test/metrics-histogram.test.ts) and registers in
 * a prom-client `Registry` like one.
 */
export class RouteHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum' as const
  private readonly series = new Map<string, Series>()

  constructor (readonly name: string, readonly help: string, private readonly buckets: number[]) {}

  observe (method: string, route: string, statusCode: number, seconds: number): void {
    const key = `${method} ${statusCode} ${route}`
    let series = this.series.get(key)
    if (series === undefined) {
      series = { labels: { method, route, status_code: String(statusCode) }, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 }
      this.series.set(key, series)
    }
    let i = 0
    while (i < this.buckets.length && seconds > this.buckets[i]) i++
    series.counts[i]++
    series.sum += seconds
    series.count++
  }

  reset (): void {
    this.series.clear()
  }

  /** What prom-client's registry reads from a metric (`Histogram.get()`'s shape). */
  async get (): Promise<{ name: string, help: string, type: 'histogram', aggregator: 'sum', values: Array<MetricValueWithName<string>> }> {
    const values: Array<MetricValueWithName<string>> = []
    for (const { labels, counts, sum, count } of this.series.values()) {
      let cumulative = 0
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += counts[i]
        values.push({ value: cumulative, labels: { le: this.buckets[i], ...labels }, metricName: `${this.name}_bucket` })
      }
      values.push({ value: count, labels: { le: '+Inf', ...labels }, metricName: `${this.name}_bucket` })
      values.push({ value: sum, labels, metricName: `${this.name}_sum` })
      values.push({ value: count, labels, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }
}
