import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, type Dispatcher } from 'undici'
import { PlayerClient, type PlayResponse } from '../../client/player.js'
import { SequentialReader } from '../../client/sequential-reader.js'
import { abrFigures, abrViewer, DEFAULT_LINKS, drawLink, isAdaptivePlay, type AbrViewer, type LinkShare } from './abr-viewers.js'
import { planSessions, readerSizes, seekRng, type PlannedSession, type Scenario } from './audience.js'
import { sampleInto, startSampler, type MetricsTargets } from './edge-counters.js'
import { playersCeiling } from './players-ceiling.js'
import type { Rng } from './random.js'
import type { LoadResult, TimelinePoint } from './report.js'
import type { Title } from './target.js'

export type { Scenario } from './audience.js'

/**
 * `reelcdn loadtest players`: simulated viewers, each playing one session the
 * way a player does. It gets its URLs (from /v1/play, or the target itself),
 * opens them with the player client, buffers ahead with the sequential reader,
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

interface SessionResult {
  ok: boolean
  /** the run stopped before the start-up threshold was reached */
  cut: boolean
  contentId: string
  startupMs: number
  stallMs: number[]
  /** waits for the buffer after the viewer's own seeks: not stalls (the viewer asked for the jump) */
  seekWaitMs: number[]
  seeks: number
  watchMs: number
  bytes: number
  received: number
  /** of `received`, bytes from the URL /v1/play marked as the origin */
  fromOrigin: number
  error?: string
  /** an adaptive viewer's link and what it played */
  abr?: AbrViewer
}

/** A failed fetch ahead: a player waiting for bytes needs it now, not at its next read(). */
function readerFailed(r: SequentialReader): Error | undefined {
  return r.failure
}

interface Run {
  o: PlayersOptions
  dispatcher: Dispatcher
  stopped: () => boolean
  /** bytes received by finished sessions, and the clients of those playing: the network throughput */
  received: { done: number; open: Set<{ bytesReceived: number }> }
}

function receivedSoFar(run: Run): number {
  let n = run.received.done
  for (const c of run.received.open) n += c.bytesReceived
  return n
}

const emptyResult = (contentId: string): SessionResult =>
  ({ ok: false, cut: false, contentId, startupMs: 0, stallMs: [], seekWaitMs: [], seeks: 0, watchMs: 0, bytes: 0, received: 0, fromOrigin: 0 })

/** A failed play step: cut if the run had stopped, else an error. */
function failedPlay(run: Run, contentId: string, err: unknown): SessionResult {
  const out = emptyResult(contentId)
  if (run.stopped()) out.cut = true
  else out.error = (err as Error).message
  return out
}

async function session(run: Run, plan: PlannedSession, rng: Rng, index: number): Promise<SessionResult> {
  let answer: PlayResponse
  try {
    answer = await run.o.play(plan.contentId)
  } catch (err) {
    return failedPlay(run, plan.contentId, err)
  }
  return isAdaptivePlay(answer) ? abrSession(run, plan, index, answer) : fileSession(run, plan, rng, answer)
}

/** An adaptive title's viewer: the ABR player behind its link; times in scenario seconds (what a viewer at real time sees). */
async function abrSession(run: Run, plan: PlannedSession, index: number, answer: PlayResponse): Promise<SessionResult> {
  const out = emptyResult(plan.contentId)
  const linkBps = drawLink(run.o.links ?? DEFAULT_LINKS, run.o.seed, index)
  let open: { bytesReceived: number } | undefined
  try {
    const v = await abrViewer(answer, { scenario: run.o.scenario, speed: run.o.speed, linkBps, watchS: plan.watchS, dispatcher: run.dispatcher,
      stopped: run.stopped, onOpen: p => { open = p; run.received.open.add(p) } })
    const r = v.report
    out.abr = v
    out.received = r.bytesReceived
    out.fromOrigin = r.bytesFromOrigin
    out.bytes = r.bytesReceived
    if (r.startupS === undefined) out.cut = run.stopped()
    if (r.error !== undefined && !run.stopped()) out.error = r.error
    else if (r.startupS !== undefined) {
      out.ok = true
      out.startupMs = r.startupS * 1000
      out.stallMs = r.stallTimesS.map(x => x * 1000)
      out.watchMs = r.playedS * 1000
    }
  } catch (err) {
    return failedPlay(run, plan.contentId, err)
  } finally {
    if (open) run.received.open.delete(open)
    run.received.done += out.received
  }
  return out
}

async function fileSession(run: Run, plan: PlannedSession, rng: Rng, answer: PlayResponse): Promise<SessionResult> {
  const { o } = run
  const s = o.scenario
  // media bytes per second, and per second of wall-clock time at `speed`
  const mediaBps = plan.bps / 8
  const wallBps = mediaBps * o.speed
  const watchWallMs = plan.watchS * 1000 / o.speed
  const t0 = performance.now()
  const out: SessionResult = { ok: false, cut: false, contentId: plan.contentId, startupMs: 0, stallMs: [], seekWaitMs: [], seeks: 0, watchMs: 0, bytes: 0, received: 0, fromOrigin: 0 }
  let reader: SequentialReader | undefined
  let client: PlayerClient | undefined
  try {
    // position reports every 10 s of media time, as a real player's every 10 s
    client = await PlayerClient.open(answer,
      { dispatcher: run.dispatcher, reportIntervalMs: Math.max(100, Math.round(10_000 / o.speed)) })
    run.received.open.add(client)
    const sizes = readerSizes(mediaBps, s.bufferS)
    reader = new SequentialReader(client, sizes)
    const startupBytes = Math.min(client.size, Math.ceil(mediaBps * s.startupS))
    while (reader.buffered < startupBytes && !reader.atEnd && !run.stopped()) {
      const err = readerFailed(reader)
      if (err) throw err
      await sleep(5)
    }
    if (reader.buffered < startupBytes && !reader.atEnd) {
      out.cut = true
      return out
    }
    out.startupMs = performance.now() - t0
    // play: consume in 50 ms ticks of wall time
    const tick = 50
    let played = 0
    let stallStart: number | undefined
    let seeking = false
    while (played < watchWallMs && !reader.atEnd && !run.stopped()) {
      // a tick never asks for more than half the buffer: a player waiting for more than its buffer holds waits forever
      const want = Math.min(Math.ceil(wallBps * tick / 1000), Math.floor(sizes.bufferBytes / 2))
      if (reader.buffered < Math.min(want, client.size - reader.position)) {
        const err = readerFailed(reader)
        if (err) throw err
        stallStart ??= performance.now()
        await sleep(5)
        continue
      }
      if (stallStart !== undefined) (seeking ? out.seekWaitMs : out.stallMs).push(performance.now() - stallStart)
      stallStart = undefined
      seeking = false
      const got = await reader.read(want)
      out.bytes += got.length
      played += tick
      if (rng() < s.seekChance) {
        reader.seek(Math.floor(rng() * client.size * 0.9))
        seeking = true
        out.seeks++
      }
      await sleep(tick)
    }
    if (stallStart !== undefined) (seeking ? out.seekWaitMs : out.stallMs).push(performance.now() - stallStart)
    out.watchMs = played
    out.ok = true
  } catch (err) {
    if (run.stopped() && out.startupMs === 0) out.cut = true
    else if (run.stopped()) out.ok = true // cut by the end of the run (the Agent destroyed), not a failure
    else out.error = (err as Error).message
  } finally {
    await reader?.close().catch(() => {})
    // the last position report (the router counts it in the title's per-position demand)
    await client?.close().catch(() => {})
    out.received = client?.bytesReceived ?? 0
    out.fromOrigin = client?.bytesFromOrigin ?? 0
    if (client) run.received.open.delete(client)
    run.received.done += out.received
  }
  return out
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
  let lastBytes = 0
  const timer = setInterval(() => {
    const received = receivedSoFar(run)
    const p: TimelinePoint = { t: (performance.now() - t0) / 1000, mbps: (received - lastBytes) / 1e6, hitRatio: null, hitRatioSoFar: null, sessions: active }
    lastBytes = received
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
    // the last, partial second, at its per-second rate
    const t = (performance.now() - t0) / 1000
    const dt = t - (timeline[timeline.length - 1]?.t ?? 0)
    // (a part-second of bytes however short: dropping it, when the run ended just after a tick, lost those bytes from the timeline)
    if (dt > 0.05 || (dt > 0 && receivedSoFar(run) !== lastBytes)) timeline.push({ t, mbps: (receivedSoFar(run) - lastBytes) / 1e6 / dt, hitRatio: null, hitRatioSoFar: cache?.byteHitRatio ?? null,
      offloadSoFar: cache?.originOffload ?? null, sessions: 0 })
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
