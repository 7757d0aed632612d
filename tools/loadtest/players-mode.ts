import { setTimeout as sleep } from 'node:timers/promises'
import { PlayerClient, type PlayResponse } from '../../client/player.js'
import { SequentialReader } from '../../client/sequential-reader.js'
import { exponential, mulberry32, Zipf, type Rng } from './random.js'
import type { LoadResult, TimelinePoint } from './report.js'
import type { Title } from './target.js'

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
 */
export interface Scenario {
  name: string
  players: number
  /** mean seconds between player arrivals (exponential); 0 starts them together */
  arrivalS: number
  zipf: number
  /** bits per second, with weights */
  bitrates: { bps: number; weight: number }[]
  startupS: number
  bufferS: number
  /** seconds of media watched before abandoning: a share watch the whole session length */
  sessionS: number
  completeShare: number
  meanWatchedShare: number
  seekChance: number
  /** the first title takes this share of plays (a premiere) */
  premiereShare: number
}

export interface PlayersOptions {
  scenario: Scenario
  titles: Title[]
  /** returns the ranked URLs for a title */
  play: (contentId: string) => Promise<PlayResponse>
  durationS: number
  speed: number
  seed: number
  onTick?: (p: TimelinePoint & { elapsedS: number; active: number; done: number }) => void
}

interface SessionResult {
  ok: boolean
  startupMs: number
  stallMs: number[]
  watchMs: number
  bytes: number
  received: number
  error?: string
}

function pickBitrate(rng: Rng, s: Scenario): number {
  const total = s.bitrates.reduce((a, b) => a + b.weight, 0)
  let u = rng() * total
  for (const b of s.bitrates) if ((u -= b.weight) <= 0) return b.bps
  return s.bitrates[s.bitrates.length - 1]!.bps
}

async function session(o: PlayersOptions, rng: Rng, zipf: Zipf, deadline: number, counter: { bytes: number }): Promise<SessionResult> {
  const s = o.scenario
  const title = rng() < s.premiereShare ? o.titles[0]! : o.titles[zipf.sample(rng)]!
  // media bytes per second, and per second of wall-clock time at `speed`
  const mediaBps = pickBitrate(rng, s) / 8
  const wallBps = mediaBps * o.speed
  const watchWallMs = (rng() < s.completeShare ? 1 : Math.min(1, exponential(rng, s.meanWatchedShare))) * s.sessionS * 1000 / o.speed
  const t0 = performance.now()
  const out: SessionResult = { ok: false, startupMs: 0, stallMs: [], watchMs: 0, bytes: 0, received: 0 }
  let reader: SequentialReader | undefined
  let client: PlayerClient | undefined
  try {
    // position reports every 10 s of media time, as a real player's every 10 s
    client = await PlayerClient.open(await o.play(title.contentId), { reportIntervalMs: Math.max(100, Math.round(10_000 / o.speed)) })
    const bufferBytes = Math.max(256 * 1024, Math.ceil(mediaBps * s.bufferS))
    reader = new SequentialReader(client, { bufferBytes, fetchBytes: Math.min(bufferBytes, 1024 * 1024) })
    const startupBytes = Math.min(client.size, Math.ceil(mediaBps * s.startupS))
    while (reader.buffered < startupBytes && !reader.atEnd && performance.now() < deadline) await sleep(5)
    out.startupMs = performance.now() - t0
    // play: consume in 50 ms ticks of wall time
    const tick = 50
    let played = 0
    let stallStart: number | undefined
    while (played < watchWallMs && !reader.atEnd && performance.now() < deadline) {
      const want = Math.ceil(wallBps * tick / 1000)
      if (reader.buffered < Math.min(want, client.size - reader.position)) {
        stallStart ??= performance.now()
        await sleep(5)
        continue
      }
      if (stallStart !== undefined) {
        out.stallMs.push(performance.now() - stallStart)
        stallStart = undefined
      }
      const got = await reader.read(want)
      out.bytes += got.length
      counter.bytes += got.length
      played += tick
      if (rng() < s.seekChance) reader.seek(Math.floor(rng() * client.size * 0.9))
      await sleep(tick)
    }
    if (stallStart !== undefined) out.stallMs.push(performance.now() - stallStart)
    out.watchMs = played
    out.ok = true
  } catch (err) {
    out.error = (err as Error).message
  } finally {
    await reader?.close()
    // the last position report (the router counts it in the title's per-position demand)
    await client?.close()
    out.received = client?.bytesReceived ?? 0
  }
  return out
}

function quantile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : 0
}

export async function playersMode(o: PlayersOptions): Promise<LoadResult> {
  const rng = mulberry32(o.seed)
  const zipf = new Zipf(o.titles.length, o.scenario.zipf)
  const startedAt = new Date().toISOString()
  const t0 = performance.now()
  const deadline = t0 + o.durationS * 1000
  const counter = { bytes: 0 }
  const timeline: TimelinePoint[] = []
  let active = 0
  let done = 0
  let lastBytes = 0
  const timer = setInterval(() => {
    const p = { t: (performance.now() - t0) / 1000, mbps: (counter.bytes - lastBytes) / 1e6, hitRatio: null, sessions: active }
    lastBytes = counter.bytes
    timeline.push(p)
    o.onTick?.({ ...p, elapsedS: p.t, active, done })
  }, 1000)
  const sessions: Promise<SessionResult>[] = []
  try {
    for (let i = 0; i < o.scenario.players && performance.now() < deadline; i++) {
      // each player has its own random stream, so a run is reproducible whatever the timing
      const prng = mulberry32(o.seed * 7919 + i)
      active++
      sessions.push(session(o, prng, zipf, deadline, counter).finally(() => { active--; done++ }))
      if (o.scenario.arrivalS > 0) await sleep(exponential(rng, o.scenario.arrivalS * 1000) / o.speed)
    }
    const results = await Promise.all(sessions)
    const ok = results.filter(r => r.ok)
    const startups = ok.map(r => r.startupMs).sort((a, b) => a - b)
    const stalls = ok.flatMap(r => r.stallMs)
    const watch = ok.reduce((a, r) => a + r.watchMs, 0)
    return {
      mode: 'players', scenario: o.scenario.name, target: '', startedAt, durationS: (performance.now() - t0) / 1000, generatorCeilingMBps: null,
      timeline,
      players: {
        sessions: results.length, failed: results.length - ok.length,
        startupMs: { p50: quantile(startups, 0.5), p95: quantile(startups, 0.95), p99: quantile(startups, 0.99), max: startups[startups.length - 1] ?? 0, samples: startups },
        rebufferRatio: watch ? stalls.reduce((a, b) => a + b, 0) / watch : 0,
        stallsPerSession: ok.length ? stalls.length / ok.length : 0,
        stallSamplesMs: stalls,
        bytes: results.reduce((a, r) => a + r.bytes, 0),
        bytesReceived: results.reduce((a, r) => a + r.received, 0),
      },
    }
  } finally {
    clearInterval(timer)
  }
}
