// The part of autocannon's API the bench uses (the package ships no types).
declare module 'autocannon' {
  interface Options {
    url: string
    connections?: number
    pipelining?: number
    duration?: number
    headers?: Record<string, string>
  }
  interface Histogram { average: number, mean: number, p50: number, p99: number, total: number }
  interface Result {
    requests: Histogram
    latency: Histogram
    errors: number
    non2xx: number
    timeouts: number
  }
  function autocannon (opts: Options): Promise<Result>
  export default autocannon
}
