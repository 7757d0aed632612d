/**
 * A binary min-heap of (time, slot) pairs in typed arrays: the model's
 * clock. Each active session sits in it once, at the time of its next chunk
 * read; popping gives the reads in time order (ties by slot, so a run is
 * deterministic). No objects per entry, so ten million sessions cost the GC
 * nothing here; it grows by doubling to the peak number of concurrent
 * sessions.
 */
export class TimeHeap {
  private t = new Float64Array(1024)
  private s = new Int32Array(1024)
  size = 0

  push(time: number, slot: number): void {
    if (this.size === this.t.length) {
      const t = new Float64Array(this.size * 2); t.set(this.t); this.t = t
      const s = new Int32Array(this.size * 2); s.set(this.s); this.s = s
    }
    let i = this.size++
    while (i > 0) {
      const p = (i - 1) >> 1
      if (this.less(p, time, slot)) break
      this.t[i] = this.t[p]!
      this.s[i] = this.s[p]!
      i = p
    }
    this.t[i] = time
    this.s[i] = slot
  }

  /** The earliest time, Infinity when empty. */
  peekTime(): number {
    return this.size > 0 ? this.t[0]! : Infinity
  }

  /** Removes the earliest entry and returns its slot (the heap must not be empty). */
  pop(): number {
    const top = this.s[0]!
    const n = --this.size
    if (n > 0) {
      const time = this.t[n]!
      const slot = this.s[n]!
      let i = 0
      for (;;) {
        let c = 2 * i + 1
        if (c >= n) break
        if (c + 1 < n && this.before(c + 1, c)) c++
        if (this.less(c, time, slot) === false) break
        this.t[i] = this.t[c]!
        this.s[i] = this.s[c]!
        i = c
      }
      this.t[i] = time
      this.s[i] = slot
    }
    return top
  }

  /** Entry i sorts before (time, slot). */
  private less(i: number, time: number, slot: number): boolean {
    const ti = this.t[i]!
    return ti < time || (ti === time && this.s[i]! < slot)
  }

  private before(i: number, j: number): boolean {
    return this.less(i, this.t[j]!, this.s[j]!)
  }
}
