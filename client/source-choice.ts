import { request, type Dispatcher } from 'undici'

/**
 * Which of a play answer's URLs a player reads from (issue 14, item 21).
 *
 * The rule. /v1/play lists the edges best first and the origin (the router)
 * last. The origin is the last resort: serving players is what edges are for,
 * and on one machine, or near the router, the origin answers as fast as an
 * edge, so "the fastest" sent a quarter of the players' bytes to it.
 *   1. Every URL is probed at once with a HEAD: a good answer is a 200 with
 *      the title's size (Content-Length). A HEAD reads no bytes, so a probe
 *      starts no chunk fill on a cold edge and counts as no player read (a
 *      one-byte GET did both, and made the edge's hit ratio meaningless).
 *   2. Within `budgetMs` of the start, the first edge in /v1/play order whose
 *      probe answered well is chosen, as soon as every edge ranked above it
 *      has failed its probe (or at the budget, if some are still pending); a
 *      faster edge further down the list does not jump the queue.
 *   3. If every edge has failed its probe, or none has answered within the
 *      budget, the first URL in that order (edges, then the origin) to answer
 *      well is chosen: the origin only when no edge has.
 *   4. While reading (`sourceOrder`): working sources come first, edges
 *      before the origin, each in /v1/play order; a source whose read failed
 *      is down, behind them, for a bounded time (`markFailed`: the backoff,
 *      doubled for each failure in a row, up to a cap), then works again: the
 *      next read tries it in its place, and a read it serves clears its
 *      failures (`markServed`). So a failover goes to the next edge before the
 *      origin, an edge whose probe answered after the choice was made goes in
 *      front of the origin, and an edge that failed once (a restart, a
 *      dropped connection) gets the player back once its backoff has passed:
 *      one failure never sends a player to the origin for good.
 * URLs without a `kind` (a bare list of URLs, the load tester's --target) are
 * edges.
 */
export interface Source {
  url: string
  kind: 'edge' | 'origin'
  /** place in the play answer's list */
  rank: number
  /** probe latency, ms (for information: the order above does not use it) */
  rtt: number
  /** failed reads in a row; 0 once it serves a read */
  failures: number
  /** clock time (ms) until which it is down, behind every working source; 0 if it has not failed */
  downUntil: number
}

/** How long a source whose read failed is down: `baseMs` after its first failure in a row, doubled for each further one, at most `maxMs`. */
export interface Backoff {
  baseMs: number
  maxMs: number
}

/** A read from `s` failed at `now`: it is down for its backoff. */
export function markFailed(s: Source, now: number, b: Backoff): void {
  s.failures++
  s.downUntil = now + Math.min(b.maxMs, b.baseMs * 2 ** Math.min(s.failures - 1, 30))
}

/** `s` served a read: it is up, and its next failure starts the backoff over. */
export function markServed(s: Source): void {
  s.failures = 0
  s.downUntil = 0
}

export interface ProbeAnswer {
  size: number
  etag: string
}

/**
 * The order reads use sources in at `now`: working before down, edges before
 * the origin, then /v1/play's; of those down, the one back soonest first.
 */
export function sourceOrder(now: number): (a: Source, b: Source) => number {
  return (a, b) => {
    const aDown = a.downUntil > now
    const bDown = b.downUntil > now
    if (aDown !== bDown) return aDown ? 1 : -1
    if (aDown) return a.downUntil - b.downUntil || a.rank - b.rank
    return Number(a.kind === 'origin') - Number(b.kind === 'origin') || a.rank - b.rank
  }
}

/** A HEAD of the title at `url`: its size and ETag, or undefined if it did not answer well within `timeoutMs`. */
export async function probe(url: string, o: { dispatcher: Dispatcher; timeoutMs: number }): Promise<ProbeAnswer | undefined> {
  try {
    const res = await request(url, { method: 'HEAD', dispatcher: o.dispatcher, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs })
    await res.body.dump()
    const size = Number(res.headers['content-length'])
    if (res.statusCode !== 200 || !Number.isSafeInteger(size) || size < 0 || res.headers['accept-ranges'] === 'none') return undefined
    return { size, etag: String(res.headers.etag ?? '') }
  } catch {
    return undefined
  }
}

/**
 * Steps 2 and 3 of the rule over probes in /v1/play order: resolves with the
 * chosen probe's answer once the rule can decide, or undefined if every
 * probe failed.
 */
export function chooseSource<A>(probes: { kind: 'edge' | 'origin'; answer: Promise<A | undefined> }[], budgetMs: number): Promise<A | undefined> {
  const order = probes.map((p, i) => ({ ...p, i })).sort((a, b) => Number(a.kind === 'origin') - Number(b.kind === 'origin') || a.i - b.i)
  const state: ({ done: false } | { done: true; answer: A | undefined })[] = probes.map(() => ({ done: false }))
  let budgetPassed = false
  let decided = false
  return new Promise(resolve => {
    let timer: NodeJS.Timeout | undefined
    const pick = (a: A | undefined) => {
      decided = true
      clearTimeout(timer)
      resolve(a)
    }
    const decide = () => {
      if (decided) return
      if (!budgetPassed) {
        for (const p of order) {
          if (p.kind !== 'edge') break
          const s = state[p.i]!
          if (!s.done) return // an edge ranked higher may still answer in time
          if (s.answer !== undefined) return pick(s.answer)
        }
      }
      for (const p of order) {
        const s = state[p.i]!
        if (s.done && s.answer !== undefined) return pick(s.answer)
      }
      if (state.every(s => s.done)) pick(undefined)
    }
    timer = setTimeout(() => { budgetPassed = true; decide() }, budgetMs)
    probes.forEach((p, i) => void p.answer.then(answer => { state[i] = { done: true, answer }; decide() }, () => { state[i] = { done: true, answer: undefined }; decide() }))
  })
}
