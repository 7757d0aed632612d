/**
 * What a viewer sees, from what the player has buffered: the play position,
 * start-up, stalls, seeks, and which rung was on screen for how long.
 *
 * Theory of operation. Between two events (media buffered, a seek, a look at
 * the clock) nothing changes but the play position, which moves at one second
 * of media per second of the clock while playing. So the clock keeps an anchor
 * (position, time) and works out, at each event, what happened since: if the
 * position would have passed the end of the buffer, playback stalled at the
 * exact moment it reached it (or ended, at the title's end). No timer runs;
 * `advance(now)` is the only place time passes, and every method calls it
 * first. A stall ends when `resumeS` of media is buffered (start-up and a
 * seek wait for `startupS`), or the title's end is.
 *
 * Times are seconds on the player's clock (scenario time: wall time × the
 * load test's speed), positions seconds of media. Rungs are marked per
 * segment (`mark`): the time on screen of each rung, and the rung of each
 * segment whose start was played (what QoE and switch counts are made of).
 */
export type PlayState = 'starting' | 'playing' | 'stalled' | 'seeking' | 'ended'

export interface ClockOptions {
  /** media seconds buffered before playback starts (and after a seek) */
  startupS: number
  /** media seconds buffered before a stall ends (default startupS) */
  resumeS?: number
  /** the title's length in seconds */
  durationS: number
}

interface Mark {
  from: number
  to: number
  rung: number
}

export class PlaybackClock {
  state: PlayState = 'starting'
  /** media buffered contiguously from the play position up to here */
  bufferedTo: number
  /** clock time from creation to the first frame, once started */
  startupS: number | undefined
  /** each stall's length (not the waits after seeks) */
  readonly stalls: number[] = []
  readonly seekWaits: number[] = []
  /** media seconds played */
  playedS = 0
  /** seconds on screen per rung */
  readonly rungSeconds = new Map<number, number>()
  /** the rung of each segment whose start was played, in play order */
  readonly playedRungs: number[] = []
  private anchorPos: number
  private anchorAt: number
  private waitFrom: number
  private readonly createdAt: number
  private readonly resumeS: number
  private marks: Mark[] = []
  /** marks before this index were started already */
  private started = 0

  constructor(private readonly o: ClockOptions, now: number, position = 0) {
    if (!(o.durationS > 0)) throw new RangeError(`expected a title longer than 0 s, got ${o.durationS}`)
    this.bufferedTo = this.anchorPos = position
    this.anchorAt = this.waitFrom = this.createdAt = now
    this.resumeS = o.resumeS ?? o.startupS
  }

  get durationS(): number {
    return this.o.durationS
  }

  position(now: number): number {
    this.advance(now)
    return this.state === 'playing' ? this.anchorPos + (now - this.anchorAt) : this.anchorPos
  }

  /** Media seconds buffered ahead of the play position. */
  level(now: number): number {
    return Math.max(0, this.bufferedTo - this.position(now))
  }

  get waiting(): boolean {
    return this.state === 'starting' || this.state === 'stalled' || this.state === 'seeking'
  }

  /** The rung on screen (or about to be), undefined when nothing is marked there. */
  rungAt(now: number): number | undefined {
    const p = this.position(now)
    return this.marks.find(m => m.from <= p && p < m.to)?.rung
  }

  /** Segment [from, to) of the buffer is at `rung`. Call before `buffered` covers it. */
  mark(from: number, to: number, rung: number): void {
    this.marks.push({ from, to, rung })
  }

  /** The buffer now reaches `to` (media seconds): playback may start or resume. */
  buffered(to: number, now: number): void {
    this.advance(now)
    this.bufferedTo = Math.max(this.bufferedTo, Math.min(to, this.o.durationS))
    if (!this.waiting) return
    const need = this.state === 'stalled' ? this.resumeS : this.o.startupS
    if (this.bufferedTo - this.anchorPos < need - 1e-9 && this.bufferedTo < this.o.durationS) return
    const waited = now - this.waitFrom
    if (this.state === 'starting') this.startupS = now - this.createdAt
    else if (this.state === 'stalled') this.stalls.push(waited)
    else this.seekWaits.push(waited)
    this.state = 'playing'
    this.anchorAt = now
    this.play(this.anchorPos, this.anchorPos) // the first segment's start
  }

  /** Moves the play position: the buffer is dropped, and playback waits for startupS there. */
  seek(to: number, now: number): void {
    this.advance(now)
    if (this.state === 'stalled') this.stalls.push(now - this.waitFrom)
    if (this.state === 'seeking') this.seekWaits.push(now - this.waitFrom)
    if (this.state !== 'starting') this.state = 'seeking'
    this.waitFrom = now
    this.anchorPos = this.bufferedTo = Math.max(0, Math.min(to, this.o.durationS))
    this.anchorAt = now
    this.marks = []
    this.started = 0
  }

  /** The session ends: a stall or seek wait still running counts up to now. */
  finish(now: number): void {
    this.advance(now)
    if (this.state === 'stalled') this.stalls.push(now - this.waitFrom)
    if (this.state === 'seeking') this.seekWaits.push(now - this.waitFrom)
    this.state = 'ended'
  }

  /** Plays from the anchor up to `now`, stopping where the buffer or the title ends. */
  advance(now: number): void {
    if (this.state !== 'playing') return
    const want = this.anchorPos + (now - this.anchorAt)
    if (want < this.bufferedTo) {
      this.play(this.anchorPos, want)
      this.anchorPos = want
      this.anchorAt = now
      return
    }
    const end = this.bufferedTo
    this.play(this.anchorPos, end)
    const at = this.anchorAt + (end - this.anchorPos)
    this.anchorPos = end
    this.anchorAt = at
    if (end >= this.o.durationS) this.state = 'ended'
    else {
      this.state = 'stalled'
      this.waitFrom = at
    }
  }

  /** Counts [from, to) as played: seconds per rung, and the segments started by `to`. */
  private play(from: number, to: number): void {
    this.playedS += to - from
    for (const m of this.marks) {
      if (m.from >= to) break
      const s = Math.min(to, m.to) - Math.max(from, m.from)
      if (s > 0) this.rungSeconds.set(m.rung, (this.rungSeconds.get(m.rung) ?? 0) + s)
    }
    while (this.started < this.marks.length && this.marks[this.started]!.from <= to + 1e-9) {
      this.playedRungs.push(this.marks[this.started]!.rung)
      this.started++
    }
    // marks played through (and so started) are done with
    let done = 0
    while (done < this.started && this.marks[done]!.to <= to) done++
    if (done > 0) {
      this.marks.splice(0, done)
      this.started -= done
    }
  }
}
