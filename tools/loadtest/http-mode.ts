import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import autocannon from 'autocannon'
import { sampleInto, startSampler, type CounterSampler, type MetricsTargets } from './edge-counters.js'
import { mulberry32, Zipf } from './random.js'
import type { LoadResult, TimelinePoint } from './report.js'
import type { Title } from './target.js'
import { Throughput } from './throughput.js'

/**
 * `reelcdn loadtest http`: raw request load with autocannon. Each request picks
 * a title by Zipf rank and a byte range of `rangeBytes` at a uniformly random
 * position (or the title's opening, with `openingShare`). autocannon is good at
 * request rates and poor at large bodies (about 0.1 GB/s of 1 MiB bodies here),
 * so the run first measures the generator's own ceiling against a trivial
 * in-memory server with the same body size, and reports it beside the result:
 * a throughput near that ceiling is the generator's limit, not the server's.
 */
export interface HttpModeOptions {
  target: string
  titles: Title[]
  zipf: number
  /** bytes per request; several: each request draws one uniformly */
  rangeBytes: number | number[]
  openingShare: number
  connections: number
  durationS: number
  /** stop after this many requests too */
  requests: number
  seed: number
  headers?: Record<string, string>
  measureCeiling: boolean
  /** whose /metrics give the byte hit ratio (over time and for the run) and origin offload */
  metrics?: MetricsTargets
  onTick?: (p: TimelinePoint & { elapsedS: number }) => void
}

interface Run {
  result: autocannon.Result
  timeline: TimelinePoint[]
  latencies: number[]
  bytes: number
}

function run(url: string, opts: Pick<HttpModeOptions, 'connections' | 'durationS' | 'requests' | 'onTick'>,
  setup: (req: autocannon.Request) => autocannon.Request, sampler?: CounterSampler): Promise<Run> {
  return new Promise((resolve, reject) => {
    const timeline: TimelinePoint[] = []
    const latencies: number[] = []
    // answers in the current second (for the latency sample below), and in all; bytes in all
    let second = { n: 0 }
    let answers = 0
    let bytes = 0
    const throughput = new Throughput()
    const t0 = Date.now()
    // @NOTE autocannon's `amount` makes it ignore `duration`; `maxOverallRequests` keeps both bounds. Each
    // connection gets a share of it, and a share of 0 would mean no limit: never more connections than requests.
    const inst = autocannon({
      url, duration: opts.durationS, connections: opts.requests ? Math.min(opts.connections, opts.requests) : opts.connections,
      ...(opts.requests ? { maxOverallRequests: opts.requests } : {}),
      requests: [{ method: 'GET', setupRequest: setup }],
    }, (err, result) => {
      clearInterval(timer)
      // the last, partial second (throughput.ts)
      const end = throughput.end((Date.now() - t0) / 1000, bytes, answers)
      if (end) timeline.push({ t: end.t, mbps: end.mbps, rps: Math.round(end.rps), hitRatio: null, hitRatioSoFar: null })
      if (err) reject(err)
      else resolve({ result, timeline, latencies, bytes })
    })
    inst.on('response', (_client: unknown, _status: number, resBytes: number, ms: number) => {
      // resBytes are the bytes on the wire: headers included (about 200 per response)
      second.n++
      answers++
      bytes += resBytes
      // a bounded sample is plenty for a histogram: keep every response up to 200k, then every 10th
      if (latencies.length < 200_000 || second.n % 10 === 0) latencies.push(ms)
    })
    const timer = setInterval(() => {
      const { t, mbps, rps } = throughput.point((Date.now() - t0) / 1000, bytes, answers)
      const p: TimelinePoint = { t, mbps, rps: Math.round(rps), hitRatio: null, hitRatioSoFar: null }
      timeline.push(p)
      second = { n: 0 }
      sampleInto(sampler, p, () => opts.onTick?.({ ...p, elapsedS: p.t }))
    }, 1000)
  })
}

/** autocannon's own MB/s against a server that answers every request with `bodyBytes` from memory. */
export async function generatorCeiling(bodyBytes: number, connections: number, durationS = 2): Promise<number> {
  const body = Buffer.alloc(bodyBytes, 7)
  const server = createServer((_req, res) => { res.writeHead(206, { 'content-length': body.length }); res.end(body) })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()))
  try {
    const { port } = server.address() as AddressInfo
    const r = await run(`http://127.0.0.1:${port}`, { connections, durationS, requests: 0 }, req => req)
    return r.bytes / 1e6 / Math.max(0.001, r.result.duration)
  } finally {
    server.closeAllConnections()
    server.close()
  }
}

export async function httpMode(o: HttpModeOptions): Promise<LoadResult> {
  if (!(o.durationS > 0) || !Number.isInteger(o.requests) || o.requests < 1)
    throw new RangeError(`a run needs a time and a request bound: got ${o.durationS} s and ${o.requests} requests`)
  const sizes = Array.isArray(o.rangeBytes) ? o.rangeBytes : [o.rangeBytes]
  if (sizes.length === 0 || sizes.some(n => !Number.isInteger(n) || n < 1)) throw new RangeError(`expected range sizes of at least 1 byte, got ${sizes.join(',')}`)
  const ceiling = o.measureCeiling ? await generatorCeiling(Math.max(...sizes), o.connections) : null
  const rng = mulberry32(o.seed)
  const zipf = new Zipf(o.titles.length, o.zipf)
  const { sampler, error: startError } = await startSampler(o.metrics)
  let metricsError = startError
  const startedAt = new Date().toISOString()
  const r = await run(o.target, o, req => {
    const title = o.titles[zipf.sample(rng)]!
    const size = sizes.length === 1 ? sizes[0]! : sizes[Math.floor(rng() * sizes.length)]!
    const len = Math.min(size, title.size)
    const start = rng() < o.openingShare ? 0 : Math.floor(rng() * (title.size - len + 1))
    req.path = `/v1/content/${encodeURIComponent(title.contentId)}`
    req.headers = { ...o.headers, range: `bytes=${start}-${start + len - 1}` }
    return req
  }, sampler)
  const cache = await sampler?.finish().catch((err: Error) => { metricsError = `no cache figures: ${err.message}`; return undefined })
  const last = r.timeline[r.timeline.length - 1]
  if (cache && last) {
    last.hitRatioSoFar = cache.byteHitRatio
    last.offloadSoFar = cache.originOffload
  }
  const res = r.result
  const errorsByStatus: Record<string, number> = {}
  for (const [code, v] of Object.entries(res.statusCodeStats ?? {})) if (!code.startsWith('2')) errorsByStatus[code] = v.count ?? 0
  if (res.errors) errorsByStatus.connection = res.errors
  if (res.timeouts) errorsByStatus.timeout = res.timeouts
  const sorted = [...r.latencies].sort((a, b) => a - b)
  const q = (p: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : 0
  return {
    mode: 'http', scenario: 'http', target: o.target, startedAt, durationS: res.duration, generatorCeilingMBps: ceiling,
    timeline: r.timeline,
    http: {
      requests: res.requests.total, reqPerSec: res.requests.total / Math.max(0.001, res.duration), mbps: r.bytes / 1e6 / Math.max(0.001, res.duration),
      latencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sorted[sorted.length - 1] ?? 0 },
      latencySamplesMs: r.latencies, errorsByStatus,
    },
    ...(cache ? { cache } : {}),
    ...(metricsError ? { metricsError } : {}),
  }
}
