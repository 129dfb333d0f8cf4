// The request-duration histogram renders exactly as prom-client's own Histogram would.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Histogram, Registry, type Metric } from 'prom-client'
import { RouteHistogram } from '../src/route-histogram.js'

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

test('RouteHistogram renders as a prom-client Histogram fed the same observations', async () => {
  const ours = new Registry()
  const theirs = new Registry()
  const fast = new RouteHistogram('http_request_duration_seconds', 'HTTP requests', BUCKETS)
  ours.registerMetric(fast as unknown as Metric)
  const reference = new Histogram({ name: 'http_request_duration_seconds', help: 'HTTP requests', labelNames: ['method', 'route', 'status_code'], buckets: BUCKETS, registers: [theirs] })
  // Values on bucket bounds, between them, past the last one, and zero.
  const samples: Array<[string, string, number, number]> = [
    ['GET', '/healthz', 200, 0.0004], ['GET', '/healthz', 200, 0.001], ['GET', '/healthz', 200, 0.0011],
    ['GET', '/sessions/:sessionId/status', 200, 0.02], ['GET', '/sessions/:sessionId/status', 404, 0.003],
    ['POST', '/sessions', 201, 0.7], ['POST', '/sessions', 503, 3.5], ['GET', 'unknown', 404, 0], ['DELETE', '/sessions/:sessionId', 200, 2.5],
  ]
  for (const [method, route, status, seconds] of samples) {
    fast.observe(method, route, status, seconds)
    reference.observe({ method, route, status_code: String(status) }, seconds)
  }
  const sorted = (text: string): string[] => text.split('\n').filter(Boolean).sort()
  assert.deepEqual(sorted(await ours.metrics()), sorted(await theirs.metrics()))
  assert.match(await ours.metrics(), /http_request_duration_seconds_bucket\{le="0\.001",method="GET",route="\/healthz",status_code="200"\} 2/)
  fast.reset()
  assert.doesNotMatch(await ours.metrics(), /_bucket/)
})
