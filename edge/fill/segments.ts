/**
 * The byte ranges of one chunk that a Fill's upstream requests cover: a sorted
 * list of disjoint segments [from, to), and the gaps between them. Each
 * segment is brought by one request at a time; `to` only ever shrinks (a
 * later segment took over the rest), so segments never overlap and a byte
 * belongs to at most one. Owned by its Fill alone; nothing here is async.
 */
export interface Segment {
  from: number
  /** exclusive end still wanted; lowered when a later segment takes over the rest */
  to: number
  /** exclusive end of the request in flight */
  end: number
  /** bytes [from, pos) have arrived */
  pos: number
  /** bytes [from, ok) are released to readers (and hashed) */
  ok: number
  /** the request in flight may write the fill's buffer up to here (BodyDest.claim, lib/http/shard-read.ts): no split below it */
  claimed: number
  done: boolean
}

export class Segments implements Iterable<Segment> {
  private readonly list: Segment[] = []

  constructor(private readonly size: number) {}

  [Symbol.iterator](): Iterator<Segment> {
    return this.list[Symbol.iterator]()
  }

  /** A new segment [from, to), in order. */
  add(from: number, to: number): Segment {
    const seg: Segment = { from, to, end: to, pos: from, ok: from, claimed: from, done: false }
    let i = 0
    while (i < this.list.length && this.list[i]!.from < from) i++
    this.list.splice(i, 0, seg)
    return seg
  }

  /** The segment that holds byte `pos`, if any. */
  at(pos: number): Segment | undefined {
    for (const s of this.list) if (s.from <= pos && pos < s.to) return s
    return undefined
  }

  /** The end of the gap that contains `pos`: the start of the next segment, or the chunk's end. */
  gapEnd(pos: number): number {
    let end = this.size
    for (const s of this.list) if (s.from > pos && s.from < end) end = s.from
    return end
  }

  /** The first gap's start at or after `after`, wrapping around to the first gap; undefined when none is left. */
  nextGap(after: number): number | undefined {
    const gaps: number[] = []
    let pos = 0
    for (const s of this.list) {
      if (s.from > pos) gaps.push(pos)
      pos = s.to
    }
    if (pos < this.size) gaps.push(pos)
    return gaps.find(g => g >= after) ?? gaps[0]
  }
}
