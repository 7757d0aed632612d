import { exponential, mulberry32, Zipf, type Rng } from './random.js'
import type { Title } from './target.js'

/**
 * The audience of a players run, from a scenario and a seed alone: when each
 * viewer arrives, what it plays, at which bitrate, how long it stays, and how
 * much a player buffers. The same seed gives the same audience whatever the
 * timing of the run (tools/loadtest/players-mode.ts plays it).
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
  /** chance of a seek per 50 ms tick of playback */
  seekChance: number
  /** the first title takes this share of plays (a premiere); the others share the rest by Zipf rank */
  premiereShare: number
}

export interface PlannedSession {
  /** seconds of scenario time (wall time × speed) after the run's start */
  arrivalS: number
  contentId: string
  bps: number
  /** seconds of media the viewer watches before leaving (or the title ends) */
  watchS: number
}

function pickBitrate(rng: Rng, s: Scenario): number {
  const total = s.bitrates.reduce((a, b) => a + b.weight, 0)
  let u = rng() * total
  for (const b of s.bitrates) if ((u -= b.weight) <= 0) return b.bps
  return s.bitrates[s.bitrates.length - 1]!.bps
}

/** Session i's own random streams: one for its plan, one for its seeks. */
export const sessionRng = (seed: number, i: number) => mulberry32(seed * 7919 + i)
export const seekRng = (seed: number, i: number) => mulberry32((seed * 7919 + i) ^ 0x5bd1e995)

/**
 * The audience, from the seed: arrivals (exponential gaps), titles (the
 * premiere with `premiereShare`, else Zipf over the other titles), bitrates
 * (weighted), watch lengths (the abandonment curve: `completeShare` watch all
 * `sessionS`, the others an exponential share of mean `meanWatchedShare`).
 */
export function planSessions(s: Scenario, titles: Title[], seed: number, n = s.players): PlannedSession[] {
  const premiere = s.premiereShare > 0 && titles.length > 1
  const zipf = new Zipf(premiere ? titles.length - 1 : titles.length, s.zipf)
  const arrivals = mulberry32(seed)
  const out: PlannedSession[] = []
  let at = 0
  for (let i = 0; i < n; i++) {
    const rng = sessionRng(seed, i)
    const title = premiere
      ? (rng() < s.premiereShare ? titles[0]! : titles[1 + zipf.sample(rng)]!)
      : titles[zipf.sample(rng)]!
    const bps = pickBitrate(rng, s)
    const watchS = (rng() < s.completeShare ? 1 : Math.min(1, exponential(rng, s.meanWatchedShare))) * s.sessionS
    out.push({ arrivalS: at, contentId: title.contentId, bps, watchS })
    if (s.arrivalS > 0) at += exponential(arrivals, s.arrivalS)
  }
  return out
}

export function readerSizes(mediaBps: number, bufferS: number) {
  const bufferBytes = Math.max(256 * 1024, Math.ceil(mediaBps * bufferS))
  return { bufferBytes, fetchBytes: Math.min(bufferBytes, 1024 * 1024) }
}
