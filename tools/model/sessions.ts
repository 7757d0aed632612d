import { closeSync, openSync, readSync, writeSync } from 'node:fs'
import { ConfigError } from '../../lib/errors.js'
import { exponential, mulberry32, Zipf } from '../loadtest/random.js'
import { defaultTrace } from '../loadtest/trace.js'
import type { Deployment } from './deployment.js'

/**
 * The viewing sessions a model run replays, in arrival order, streamed (a
 * country's ten million are never all in memory). A session starts at a
 * site, plays one title from chunk `first` and reads `count` chunks, one per
 * chunk period. Generated from a popularity model (the single-edge
 * simulator's: tools/loadtest/trace.ts's abandonment curve, Zipf popularity,
 * Poisson arrivals spread over `hours`, sites drawn by their viewers) or read
 * from a file in the format `writeSessions` produces:
 *
 *     # reelcdn model sessions v1
 *     <arrival ms> <site index> <title index> <first chunk> <chunks read>
 *
 * Seeks are left out: a viewer who jumps ahead is, to a cache, a new run of
 * chunks; a file can spell that as a second line.
 */
export interface Session {
  at: number
  site: number
  title: number
  first: number
  count: number
}

export interface SessionModel {
  sessions: number
  /** the arrivals spread over this many simulated hours */
  hours: number
  zipf: number
  seed: number
}

export const HEADER = '# reelcdn model sessions v1'

/** The one object is reused for every session: copy what you keep. */
export function* generateSessions(dep: Deployment, o: SessionModel): Generator<Session> {
  const rng = mulberry32(o.seed)
  const zipf = new Zipf(dep.titles.length, o.zipf)
  const cum = new Float64Array(dep.sites.length)
  let total = 0
  dep.sites.forEach((s, i) => { cum[i] = total += s.viewers })
  const gap = (o.hours * 3_600_000) / o.sessions
  const s: Session = { at: 0, site: 0, title: 0, first: 0, count: 0 }
  for (let i = 0; i < o.sessions; i++) {
    s.at += exponential(rng, gap)
    const u = rng() * total
    let lo = 0
    let hi = cum.length - 1
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (cum[mid]! < u) lo = mid + 1; else hi = mid }
    s.site = lo
    s.title = zipf.sample(rng)
    const len = dep.titles[s.title]!
    s.count = rng() < defaultTrace.completeShare ? len : Math.max(1, Math.ceil(len * Math.min(1, exponential(rng, defaultTrace.meanWatched))))
    yield s
  }
}

/** Reads a sessions file line by line (synchronously: the engine's loop is), checking each line against the deployment. */
export function* readSessions(file: string, dep: Deployment): Generator<Session> {
  let fd: number
  try { fd = openSync(file, 'r') } catch (err) { throw new ConfigError(`cannot read sessions ${file}: ${(err as Error).message}`) }
  try {
    const buf = Buffer.alloc(1 << 20)
    let rest = ''
    let lineNo = 0
    let last = 0
    const s: Session = { at: 0, site: 0, title: 0, first: 0, count: 0 }
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null)
      const text = rest + buf.toString('utf8', 0, n)
      const lines = text.split('\n')
      rest = n === 0 ? '' : lines.pop()!
      for (const line of lines) {
        lineNo++
        if (line === '' || line.startsWith('#')) continue
        const f = line.trim().split(/\s+/).map(Number)
        const bad = (why: string) => new ConfigError(`sessions ${file} line ${lineNo}: ${why}: ${JSON.stringify(line.slice(0, 80))}`)
        if (f.length !== 5 || f.some(x => !Number.isFinite(x))) throw bad('expected 5 numbers (arrival ms, site, title, first chunk, chunks read)')
        const [at, site, title, first, count] = f as [number, number, number, number, number]
        if (at < last) throw bad(`arrivals must not go back in time (previous ${last})`)
        if (!Number.isInteger(site) || site < 0 || site >= dep.sites.length) throw bad(`site must be an index below ${dep.sites.length}`)
        if (!Number.isInteger(title) || title < 0 || title >= dep.titles.length) throw bad(`title must be an index below ${dep.titles.length}`)
        const len = dep.titles[title]!
        if (!Number.isInteger(first) || first < 0 || first >= len) throw bad(`first chunk must be below the title's ${len} chunks`)
        if (!Number.isInteger(count) || count < 1) throw bad('chunks read must be a whole number of at least 1')
        last = at
        Object.assign(s, { at, site, title, first, count: Math.min(count, len - first) })
        yield s
      }
      if (n === 0) break
    }
  } finally {
    closeSync(fd)
  }
}

/** Writes sessions in the file format above; returns how many. */
export function writeSessions(file: string, sessions: Iterable<Session>): number {
  const fd = openSync(file, 'w')
  let n = 0
  let out = HEADER + '\n'
  try {
    for (const s of sessions) {
      out += `${Math.round(s.at)} ${s.site} ${s.title} ${s.first} ${s.count}\n`
      if (++n % 10_000 === 0) { writeSync(fd, out); out = '' }
    }
    writeSync(fd, out)
  } finally {
    closeSync(fd)
  }
  return n
}
