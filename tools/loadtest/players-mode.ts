import { setTimeout as sleep } from 'node:timers/promises'
import { Agent } from 'undici'
import type { PlayResponse } from '../../client/player.js'
import { abrFigures, type LinkShare } from './abr-viewers.js'
import { planSessions, seekRng, type Scenario } from './audience.js'
import { sampleInto, startSampler, type MetricsTargets } from './edge-counters.js'
import { playersCeiling } from './players-ceiling.js'
import type { LoadResult, TimelinePoint } from './report.js'
import type { Title } from './target.js'
import { session, type Run, type SessionResult } from './viewers.js'
import { Throughput } from './throughput.js'

export type { Scenario } from './audience.js'

/**
 * `reelcdn loadtest players`: simulated viewers, each playing one session the
 * way a player does. It gets its URLs (from /v1/play, or the target itself),
 * opens them with the player client (tools/loadtest/viewers.ts plays one), buffers ahead with the sequential reader,
 * waits for the start-up threshold, then consumes the stream in real time at
 * its bitrate (times `speed`, to compress hours of playback into a short run),
 * stalling whenever the buffer runs dry and resuming once it refills.
 *
 * Every measure is about what a viewer sees: start-up delay, stall time over
 * watch time (rebuffer ratio), stalls per session, failed sessions.
 *
 * A title whose /v1/play answer names HLS masters (an adaptive title, issue
 * 15) is played instead by an ABR player behind a link drawn from `links`
 * (tools/loadtest/abr-viewers.ts), and adds time share and bytes per rung,
 * switches and average bitrate to the figures.
 *
 * Theory of operation. `planSessions` (audience.ts) draws, from the seed alone, every
 * session's arrival, title, bitrate and watch length, so a run is reproducible
 * whatever the timing; each session draws its seeks from a stream of its own.
 * All players share one undici Agent owned by the run (no per-origin
 * connection cap: a cap would queue players behind each other and report the
 * generator's queue as start-up delay). Its dispatches are counted: the run
 * stops at `durationS`, after `maxRequests` or when `signal` aborts, whichever comes first; players
 * then close, and whatever is still in flight `graceMs` later is cut by
 * destroying the Agent, so a run always ends. A session the stop catches
 * before its start-up threshold is counted as cut, in no QoE figure.
 */
export interface PlayersOptions {
  scenario: Scenario
  titles: Title[]
  /** returns the ranked URLs for a title */
  play: (contentId: string) => Promise<PlayResponse>
  durationS: number
  speed: number
  seed: number
  /** stop after this many HTTP requests (probes, ranges, position reports); 0 or absent: the time bound only */
  maxRequests?: number
  /** ends the run early, as the time and request bounds do (Ctrl-C, a test that has seen enough) */
  signal?: AbortSignal
  /** after the stop, how long players may take to close before their requests are cut (default 5 s) */
  graceMs?: number
  /** measure the generator's ceiling first (playersCeiling) */
  measureCeiling?: boolean
  /** whose /metrics give the byte hit ratio (over time and for the run) and origin offload */
  metrics?: MetricsTargets
  onTick?: (p: TimelinePoint & { elapsedS: number; active: number; done: number }) => void
  /** adaptive viewers' link capacities (default DEFAULT_LINKS: 1.5, 4, 8 and 25 Mb/s alike) */
  links?: LinkShare[]
}


function receivedSoFar(run: Run): number {
  let n = run.received.done
  for (const c of run.received.open) n += c.bytesReceived
  return n
}


function quantile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : 0
}

function quantiles(values: number[]) {
  const v = [...values].sort((a, b) => a - b)
  return { p50: quantile(v, 0.5), p95: quantile(v, 0.95), p99: quantile(v, 0.99), max: v[v.length - 1] ?? 0 }
}

export async function playersMode(o: PlayersOptions): Promise<LoadResult> {
  if (!(o.durationS > 0)) throw new RangeError(`a run needs a time bound: got ${o.durationS} s`)
  if (!(o.speed > 0)) throw new RangeError(`expected a speed above 0, got ${o.speed}`)
  const ceiling = o.measureCeiling ? await playersCeiling(o.scenario) : null
  const plan = planSessions(o.scenario, o.titles, o.seed)
  const agent = new Agent({ keepAliveTimeout: 10_000 })
  let requests = 0
  let capped = false
  const dispatcher = agent.compose(dispatch => (opts, handler) => {
    if (o.maxRequests && ++requests >= o.maxRequests) capped = true
    else if (!o.maxRequests) requests++
    return dispatch(opts, handler)
  })
  const { sampler, error: startError } = await startSampler(o.metrics)
  let metricsError = startError
  const startedAt = new Date().toISOString()
  const t0 = performance.now()
  const deadline = t0 + o.durationS * 1000
  const run: Run = { o, dispatcher, received: { done: 0, open: new Set() }, stopped: () => capped || performance.now() >= deadline || o.signal?.aborted === true }
  const timeline: TimelinePoint[] = []
  let active = 0
  let done = 0
  const throughput = new Throughput()
  const timer = setInterval(() => {
    const received = receivedSoFar(run)
    const { t, mbps } = throughput.point((performance.now() - t0) / 1000, received)
    const p: TimelinePoint = { t, mbps, hitRatio: null, hitRatioSoFar: null, sessions: active }
    timeline.push(p)
    const tick = { active, done }
    sampleInto(sampler, p, () => o.onTick?.({ ...p, elapsedS: p.t, ...tick }), received)
  }, 1000)
  const sessions: Promise<SessionResult>[] = []
  let cutter: NodeJS.Timeout | undefined
  try {
    for (let i = 0; i < plan.length && !run.stopped(); i++) {
      // wait for the next arrival in slices: the request cap, reached meanwhile, ends the run now, not then
      const at = t0 + plan[i]!.arrivalS * 1000 / o.speed
      while (performance.now() < at && !run.stopped()) await sleep(Math.min(at - performance.now(), 50, deadline - performance.now()))
      if (run.stopped()) break
      active++
      sessions.push(session(run, plan[i]!, seekRng(o.seed, i), i).finally(() => { active--; done++ }))
    }
    // the stop comes at the deadline or the request cap; then players get graceMs to close
    const all = Promise.all(sessions)
    let check: NodeJS.Timeout | undefined
    const stop = new Promise<void>(resolve => {
      check = setInterval(() => { if (run.stopped()) resolve() }, 20)
    })
    await Promise.race([all, stop]).finally(() => clearInterval(check))
    cutter = setTimeout(() => { void agent.destroy().catch(() => {}) }, o.graceMs ?? 5000)
    const results = await all
    const ok = results.filter(r => r.ok)
    const startups = ok.map(r => r.startupMs).sort((a, b) => a - b)
    const stalls = ok.flatMap(r => r.stallMs)
    const watch = ok.reduce((a, r) => a + r.watchMs, 0)
    const bytesReceived = results.reduce((a, r) => a + r.received, 0)
    const plays: Record<string, number> = {}
    for (const r of results) plays[r.contentId] = (plays[r.contentId] ?? 0) + 1
    const failed = results.filter(r => !r.ok && !r.cut)
    const abr = results.flatMap(r => r.abr && r.ok ? [r.abr] : [])
    const cache = await sampler?.finish(bytesReceived).catch((err: Error) => { metricsError = `no cache figures: ${err.message}`; return undefined })
    // the last, partial second (throughput.ts)
    const end = throughput.end((performance.now() - t0) / 1000, receivedSoFar(run))
    if (end) timeline.push({ t: end.t, mbps: end.mbps, hitRatio: null, hitRatioSoFar: cache?.byteHitRatio ?? null, offloadSoFar: cache?.originOffload ?? null, sessions: 0 })
    return {
      mode: 'players', scenario: o.scenario.name, target: '', startedAt, durationS: (performance.now() - t0) / 1000, generatorCeilingMBps: ceiling,
      timeline,
      players: {
        sessions: results.length, failed: failed.length, cutBeforeStart: results.filter(r => r.cut).length,
        startupMs: { p50: quantile(startups, 0.5), p95: quantile(startups, 0.95), p99: quantile(startups, 0.99), max: startups[startups.length - 1] ?? 0, samples: startups },
        rebufferRatio: watch ? stalls.reduce((a, b) => a + b, 0) / watch : 0,
        stallsPerSession: ok.length ? stalls.length / ok.length : 0,
        stallSamplesMs: stalls,
        seeks: ok.reduce((a, r) => a + r.seeks, 0),
        seekWaitMs: quantiles(ok.flatMap(r => r.seekWaitMs)),
        bytes: results.reduce((a, r) => a + r.bytes, 0),
        bytesReceived,
        bytesFromOrigin: results.reduce((a, r) => a + r.fromOrigin, 0),
        requests,
        plays,
        ...(abr.length ? { abr: abrFigures(abr) } : {}),
        ...(failed.length ? { errors: [...new Set(failed.map(r => r.error ?? 'unknown'))].slice(0, 10) } : {}),
      },
      ...(cache ? { cache } : {}),
      ...(metricsError ? { metricsError } : {}),
    }
  } finally {
    clearInterval(timer)
    clearTimeout(cutter)
    await agent.close().catch(() => {})
  }
}
