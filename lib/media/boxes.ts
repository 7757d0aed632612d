/**
 * ISO BMFF (MP4) box reading, as lib/media/fmp4.ts needs it: box headers
 * (32- and 64-bit sizes, size 0 = to the end), children of a container, and
 * a cursor over a box's payload that refuses to read past its end. Every
 * malformed input leaves as a MediaError naming the box and offset, never as
 * a RangeError from a Buffer read.
 */
export class MediaError extends Error {
  override name = 'MediaError'
}

export interface Box {
  type: string
  /** offset of the box's first byte in its container (or file) */
  start: number
  /** offset of its payload (after the header) */
  body: number
  /** offset one past its last byte */
  end: number
}

/**
 * The header of the box at `at` in `buf`, whose container ends at `limit` (past `buf`'s end when `buf` holds only the
 * header: a box of size 0 runs to `limit`); undefined if fewer than 8 bytes remain.
 */
export function boxAt(buf: Buffer, at: number, limit: number, base = 0): Box | undefined {
  if (limit - at < 8) return undefined
  let size = buf.readUInt32BE(at)
  const type = buf.toString('latin1', at + 4, at + 8)
  let header = 8
  if (size === 1) {
    if (limit - at < 16) throw new MediaError(`box ${printable(type)} at byte ${base + at}: a 64-bit size cut short`)
    const big = buf.readBigUInt64BE(at + 8)
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new MediaError(`box ${printable(type)} at byte ${base + at}: size ${big} is too large`)
    size = Number(big)
    header = 16
  } else if (size === 0) {
    size = limit - at
  }
  if (size < header) throw new MediaError(`box ${printable(type)} at byte ${base + at}: size ${size} is smaller than its header`)
  return { type, start: base + at, body: base + at + header, end: base + at + size }
}

/** The boxes directly inside [from, to) of `buf` (offsets relative to `buf`); each must fit. */
export function children(buf: Buffer, from: number, to: number): Box[] {
  const out: Box[] = []
  let at = from
  while (at < to) {
    const b = boxAt(buf, at, to)
    if (!b) throw new MediaError(`${to - at} stray bytes at byte ${at}`)
    if (b.end > to) throw new MediaError(`box ${printable(b.type)} at byte ${at} runs past its container (${b.end} > ${to})`)
    out.push(b)
    at = b.end
  }
  return out
}

/** The first child of type `type` in [from, to), if any. */
export function child(buf: Buffer, from: number, to: number, type: string): Box | undefined {
  return children(buf, from, to).find(b => b.type === type)
}

/** The child of type `type`, or a MediaError naming where it was expected. */
export function need(buf: Buffer, from: number, to: number, type: string, where: string): Box {
  const b = child(buf, from, to, type)
  if (!b) throw new MediaError(`no ${type} box in ${where}`)
  return b
}

/** Reads big-endian fields of one box's payload, never past its end. */
export class Cursor {
  constructor(private readonly buf: Buffer, public at: number, private readonly end: number, private readonly what: string) {}

  private take(n: number): number {
    if (this.at + n > this.end) throw new MediaError(`${this.what} is cut short (wanted ${n} bytes at offset ${this.at})`)
    const at = this.at
    this.at += n
    return at
  }

  u8(): number { return this.buf.readUInt8(this.take(1)) }
  u16(): number { return this.buf.readUInt16BE(this.take(2)) }
  u32(): number { return this.buf.readUInt32BE(this.take(4)) }
  i32(): number { return this.buf.readInt32BE(this.take(4)) }
  u64(): number {
    const v = this.buf.readBigUInt64BE(this.take(8))
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MediaError(`${this.what}: a 64-bit field ${v} is too large`)
    return Number(v)
  }
  skip(n: number): void { this.take(n) }
  get left(): number { return this.end - this.at }
  /** version (8 bits) and flags (24 bits) of a full box */
  full(): { version: number; flags: number } {
    const v = this.u32()
    return { version: v >>> 24, flags: v & 0xffffff }
  }
}

function printable(type: string): string {
  return /^[\x20-\x7e]{4}$/.test(type) ? `'${type}'` : `0x${Buffer.from(type, 'latin1').toString('hex')}`
}
