import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import { RouteHistogram } from './route-histogram.js'

/** What /metrics reports, in one registry per app (tests build several apps in one process). */
export class Metrics {
  readonly registry = new Registry()
  readonly eventsEmitted: Counter<'event'>
  readonly providerRetries: Counter
  readonly sessionDuration: Histogram<'status'>
  readonly timeToFirstEvent: Histogram
  readonly httpRequests: RouteHistogram
  readonly sessionsCreated: Counter

  constructor (sources: {
    sessionsByState: () => Record<string, number>
    activeStreams: () => number
    slowClientsDisconnected: () => number
    engineRestarts: () => number
  }) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'opencode_server_' })
    // Gauges read their value when scraped (collect), from the core's own state.
    const gauges = [
      new Gauge({
        name: 'opencode_server_sessions',
        help: 'Sessions known to the sidecar, by state',
        labelNames: ['state'],
        registers: [],
        collect () {
          for (const [state, count] of Object.entries(sources.sessionsByState())) this.set({ state }, count)
        },
      }),
      new Gauge({ name: 'opencode_server_active_streams', help: 'Open SSE stream clients', registers: [], collect () { this.set(sources.activeStreams()) } }),
      new Gauge({ name: 'opencode_server_slow_clients_disconnected_total', help: 'Stream clients disconnected because they could not keep up', registers: [], collect () { this.set(sources.slowClientsDisconnected()) } }),
      new Gauge({ name: 'opencode_server_engine_restarts_total', help: 'Restarts of the OpenCode engine (crashes, hangs, failed starts)', registers: [], collect () { this.set(sources.engineRestarts()) } }),
    ]
    for (const gauge of gauges) this.registry.registerMetric(gauge)
    this.sessionsCreated = new Counter({ name: 'opencode_server_sessions_created_total', help: 'Sessions accepted by POST /sessions', registers })
    this.eventsEmitted = new Counter({ name: 'opencode_server_events_emitted_total', help: 'Stream events stored and sent, by type', labelNames: ['event'], registers })
    this.providerRetries = new Counter({ name: 'opencode_server_provider_retries_total', help: 'Provider failures the engine retried (429/5xx/unreachable)', registers })
    this.sessionDuration = new Histogram({
      name: 'opencode_server_session_duration_seconds',
      help: 'Session duration from creation to its terminal event, by final state',
      labelNames: ['status'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    })
    this.timeToFirstEvent = new Histogram({
      name: 'opencode_server_time_to_first_agent_event_seconds',
      help: 'From creation to the first output or tool call of the agent',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    })
    this.httpRequests = new RouteHistogram(
      'opencode_server_http_request_duration_seconds',
      'HTTP requests by method, route and status (streams: time to headers)',
      [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    )
    this.registry.registerMetric(this.httpRequests as unknown as Metric)
  }
}
