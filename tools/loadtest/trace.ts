import { exponential, mulberry32, Zipf } from './random.js'

/**
 * Seeded traces of video sessions, for cache experiments. Viewers arrive as a
 * Poisson process, pick a title by Zipf popularity, start at its opening and
 * read one chunk per `chunkMs` until they abandon (a share watch to the end;
 * the rest stop after an exponentially distributed fraction, so openings are
 * read far more than endings), sometimes seeking forward. A premiere can take
 * a share of the sessions from a given moment: the thundering herd.
 */
export interface TraceOptions {
  seed: number
  titles: number
  /** chunks per title: uniform in [min, max] */
  minChunks: number
  maxChunks: number
  zipf: number
  sessions: number
  /** mean time between session arrivals */
  arrivalMs: number
  chunkMs: number
  /** share of sessions that watch to the end */
  completeShare: number
  /** mean fraction watched by the others */
  meanWatched: number
  /** per chunk read, the chance of a forward seek of 2-10 chunks */
  seekChance: number
  premiere?: { atSession: number; share: number }
}

export const defaultTrace: TraceOptions = {
  seed: 1, titles: 500, minChunks: 10, maxChunks: 40, zipf: 0.9, sessions: 4000, arrivalMs: 2000, chunkMs: 60_000,
  completeShare: 0.15, meanWatched: 0.25, seekChance: 0.02,
}

export interface TraceEvent {
  t: number
  session: number
  title: number
  index: number
  key: string
}

export function chunkKey(title: number, index: number): string {
  return `t${title}/${index}`
}

export function titleLengths(o: TraceOptions): number[] {
  const rng = mulberry32(o.seed ^ 0x5eed)
  return Array.from({ length: o.titles + (o.premiere ? 1 : 0) }, () => o.minChunks + Math.floor(rng() * (o.maxChunks - o.minChunks + 1)))
}

export function generateTrace(o: TraceOptions): TraceEvent[] {
  const rng = mulberry32(o.seed)
  const zipf = new Zipf(o.titles, o.zipf)
  const lengths = titleLengths(o)
  const events: TraceEvent[] = []
  let t = 0
  for (let s = 0; s < o.sessions; s++) {
    t += exponential(rng, o.arrivalMs)
    const premiere = o.premiere && s >= o.premiere.atSession && rng() < o.premiere.share
    const title = premiere ? o.titles : zipf.sample(rng)
    const len = lengths[title]!
    const watched = rng() < o.completeShare ? len : Math.max(1, Math.ceil(len * Math.min(1, exponential(rng, o.meanWatched))))
    let at = t
    for (let i = 0, read = 0; i < len && read < watched; i++, read++) {
      events.push({ t: at, session: s, title, index: i, key: chunkKey(title, i) })
      at += o.chunkMs
      if (rng() < o.seekChance) i += 1 + Math.floor(rng() * 9)
    }
  }
  return events.sort((a, b) => a.t - b.t || a.session - b.session)
}

/** Distinct chunks the trace can touch: the catalog. */
export function catalogChunks(o: TraceOptions): number {
  return titleLengths(o).reduce((a, b) => a + b, 0)
}
