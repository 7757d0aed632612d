/**
 * A count-min sketch of access frequency, as W-TinyLFU uses it: four rows of
 * 8-bit counters saturating at 15, indexed by double hashing of the key's
 * FNV-1a hash. It never under-counts (until aged). Aging: after `10 × width`
 * increments every counter is halved, so old popularity fades and a title that
 * was hot yesterday cannot block today's from being admitted.
 *
 * Allocation-free per call: the hash walks the string's char codes.
 */
const ROWS = 4
const MAX = 15

export function fnv1a(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

export class CountMinSketch {
  readonly width: number
  private readonly table: Uint8Array
  private readonly mask: number
  private additions = 0
  readonly sampleSize: number

  /** `entries`: about how many distinct keys the cache holds; the width is the next power of two. */
  constructor(entries: number) {
    let w = 16
    while (w < entries) w *= 2
    this.width = w
    this.mask = w - 1
    this.table = new Uint8Array(ROWS * w)
    this.sampleSize = 10 * w
  }

  private index(h1: number, h2: number, row: number): number {
    return row * this.width + ((h1 + Math.imul(row, h2)) >>> 0 & this.mask)
  }

  increment(key: string): void {
    const h1 = fnv1a(key)
    const h2 = fnv1a(key, 0x9747b28c) | 1
    let added = false
    for (let r = 0; r < ROWS; r++) {
      const i = this.index(h1, h2, r)
      if (this.table[i]! < MAX) {
        this.table[i]!++
        added = true
      }
    }
    if (added && ++this.additions >= this.sampleSize) this.age()
  }

  frequency(key: string): number {
    const h1 = fnv1a(key)
    const h2 = fnv1a(key, 0x9747b28c) | 1
    let min = MAX
    for (let r = 0; r < ROWS; r++) min = Math.min(min, this.table[this.index(h1, h2, r)]!)
    return min
  }

  private age(): void {
    for (let i = 0; i < this.table.length; i++) this.table[i]! >>= 1
    this.additions = Math.floor(this.additions / 2)
  }

  /** State for persistence beside the disk index. */
  snapshot(): Buffer {
    const out = Buffer.alloc(8 + this.table.length)
    out.writeUInt32BE(this.width, 0)
    out.writeUInt32BE(this.additions, 4)
    Buffer.from(this.table.buffer, this.table.byteOffset, this.table.length).copy(out, 8)
    return out
  }

  /** Restores a snapshot of the same width; returns false (and keeps a cold sketch) otherwise. */
  restore(buf: Buffer): boolean {
    if (buf.length !== 8 + this.table.length || buf.readUInt32BE(0) !== this.width) return false
    this.additions = buf.readUInt32BE(4)
    this.table.set(buf.subarray(8))
    return true
  }
}
