/**
 * What the edge knows of live playback sessions, for session-aware retention.
 * Playback is sequential: a session at chunk i of a title will, unless it is
 * abandoned, read chunks i+1 … i+horizon next. `wanted(key)` counts the live
 * sessions that are about to read a chunk, so the cache can keep the chunks a
 * trailing viewer will reach and evict first those no live session will.
 * A session whose last read stopped short of its chunk's end (`reading`:
 * players read a chunk in several ranges, Chromium's 32 KiB-aligned ones,
 * hls.js's segments, the load tester's ~150 kB) wants that chunk too, until
 * a read reaches its end or the session moves: without it, a chunk filled
 * for a viewer's first range could be declined and filled again for each of
 * its next ranges (test/regress/issue-17-predictive-reading-chunk). A read
 * of a whole chunk, as a trace replays them, leaves it unprotected.
 *
 * Adaptive titles (issue 15). What a session reads is a file: a title, or a
 * rendition (`contentId/rid`: edge/title.ts), and a session sits at one chunk
 * of one file. A viewer of an adaptive title is two streams of one session,
 * its video and its audio (`session#video`, `session#audio`:
 * edge/serve/session-id.ts), each at its own place. A viewer's position in
 * time is where the reader finds it in a rendition: the byte range it asks
 * for is a segment (the rendition record maps segment times to byte offsets,
 * and offsets to chunks), so when it switches rung at t seconds its next read
 * is the new rendition's segment at t, and its video stream moves there from
 * the old rung: the old rendition's chunks are no longer protected, the new
 * one's from t on are. The audio stream stays where it is. A read of a
 * rendition's init segment alone (which players make on every switch, before
 * the segment they want) is not a position: the reader does not report it.
 *
 * A session is live while it keeps reading: one idle for `idleMs` (paused,
 * abandoned, gone) stops protecting anything. Memory is bounded: at most
 * `maxSessions` sessions (the oldest is dropped), horizon keys each.
 *
 * With a `budget` (in chunks; half the cache, say), the horizon shrinks as
 * sessions multiply so that what they protect together stays within it: a
 * small cache with many viewers protects each one's next chunk, not its next
 * ten. `pending[d]` counts sessions d chunks before each key, so the
 * effective horizon can change without re-marking anything.
 * The clock is injected: every call takes `now`.
 */
interface Session {
  title: string
  index: number
  lastSeen: number
  /** its last read of `index` stopped short of the chunk's end: it will read more of it */
  reading: boolean
}

export class SessionTracker {
  private readonly sessions = new Map<string, Session>()
  private readonly pending: Map<string, number>[]
  private readonly keys = new Map<string, string[]>()

  constructor(
    readonly horizon: number,
    readonly idleMs: number,
    private readonly keyOf: (title: string, index: number) => string,
    readonly maxSessions = 100_000,
    readonly budget = Infinity,
  ) {
    this.pending = Array.from({ length: horizon + 1 }, () => new Map<string, number>())
  }

  /** How far ahead sessions protect now: the horizon, shrunk to fit the budget. */
  get effectiveHorizon(): number {
    return Math.max(1, Math.min(this.horizon, Math.floor(this.budget / Math.max(1, this.sessions.size))))
  }

  /**
   * A session read chunk `index` of `title` (`reading`: its read stopped short of the chunk's end); false if that
   * is where it already was (another range of the same chunk).
   */
  observe(session: string, title: string, index: number, now: number, reading = false): boolean {
    const s = this.sessions.get(session)
    if (s) {
      this.sessions.delete(session) // re-set below keeps the Map in last-seen order
      if (s.title === title && s.index === index) {
        s.lastSeen = now
        if (s.reading !== reading) {
          this.count(0, this.key(title, index), reading ? 1 : -1)
          s.reading = reading
        }
        this.sessions.set(session, s)
        return false
      }
      this.unmark(s)
    } else if (this.sessions.size >= this.maxSessions) {
      const [oldest, o] = this.sessions.entries().next().value as [string, Session]
      this.sessions.delete(oldest)
      this.unmark(o)
    }
    const next = { title, index, lastSeen: now, reading }
    this.sessions.set(session, next)
    this.mark(next)
    this.expire(now)
    return true
  }

  /** How many live sessions will read this chunk within the horizon, or are reading it still. */
  wanted(key: string): number {
    let n = 0
    for (let d = 0, h = this.effectiveHorizon; d <= h; d++) n += this.pending[d]!.get(key) ?? 0
    return n
  }

  get live(): number {
    return this.sessions.size
  }

  /** Drops sessions idle for longer than idleMs. Sessions are in last-seen order, so this stops early. */
  expire(now: number): void {
    for (const [id, s] of this.sessions) {
      if (now - s.lastSeen <= this.idleMs) return
      this.sessions.delete(id)
      this.unmark(s)
    }
  }

  /**
   * keyOf, remembered per title: a session that moves marks and unmarks
   * `horizon` keys each, on every chunk it reads; built once, they cost a
   * lookup instead of a new string each time. Bounded: forgotten wholesale
   * past 10,000 titles.
   */
  private key(title: string, index: number): string {
    let keys = this.keys.get(title)
    if (keys === undefined) {
      if (this.keys.size >= 10_000) this.keys.clear()
      keys = []
      this.keys.set(title, keys)
    }
    return keys[index] ??= this.keyOf(title, index)
  }

  /** `pending[d]` of `k` moved by `by` (+1 or -1); a count of 0 leaves the map. */
  private count(d: number, k: string, by: number): void {
    const m = this.pending[d]!
    const n = (m.get(k) ?? 0) + by
    if (n <= 0) m.delete(k)
    else m.set(k, n)
  }

  private mark(s: Session): void {
    if (s.reading) this.count(0, this.key(s.title, s.index), 1)
    for (let d = 1; d <= this.horizon; d++) this.count(d, this.key(s.title, s.index + d), 1)
  }

  private unmark(s: Session): void {
    if (s.reading) this.count(0, this.key(s.title, s.index), -1)
    for (let d = 1; d <= this.horizon; d++) this.count(d, this.key(s.title, s.index + d), -1)
  }
}
