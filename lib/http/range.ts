/**
 * Byte ranges as RFC 9110 §14 defines them. We parse by hand rather than with a
 * library because the edge cases are the contract: an invalid header is ignored
 * (200), an unknown unit is ignored, a valid but unsatisfiable set is a 416, and
 * positions past 2^53 must neither throw nor wrap.
 *
 * Positions are inclusive, as on the wire: `{ start: 0, end: 0 }` is one byte.
 */
export interface ByteRange {
  start: number
  end: number
}

/** `null`: serve the whole representation. `'unsatisfiable'`: 416. Otherwise 1+ ranges, sorted, disjoint. */
export type RangeDecision = ByteRange[] | null | 'unsatisfiable'

/** Gap below which two ranges are sent as one: smaller than a multipart part's own headers. */
const COALESCE_GAP = 80

function parsePos(s: string): number {
  // digits only; anything past 15 digits is beyond any real size, so Infinity is exact enough
  if (s.length === 0) return NaN
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return NaN
  }
  return s.length > 15 ? Infinity : Number(s)
}

/**
 * Where a request's first byte probably is, before the representation's size
 * is known: 0 without a Range header, the first spec's start for `bytes=N-…`,
 * undefined for anything else (a suffix range, another unit). A guess for
 * work started early (the edge asks for a chunk's fill grants while it fetches
 * the title's manifest); `parseRange` decides the answer.
 */
export function rangeStart(header: string | undefined): number | undefined {
  if (header === undefined) return 0
  const m = /^\s*bytes\s*=\s*(\d{1,15})\s*-/i.exec(header)
  return m === null ? undefined : Number(m[1])
}

/**
 * Decides what a Range header asks of a representation of `size` bytes.
 * More than `maxRanges` specs, or overlapping specs beyond that, are ignored as
 * RFC 9110 §14.2 allows for denial-of-service shapes: the answer is then a 200.
 */
export function parseRange(header: string | undefined, size: number, maxRanges = 16): RangeDecision {
  if (header === undefined) return null
  const eq = header.indexOf('=')
  if (eq < 0) return null
  if (header.slice(0, eq).trim().toLowerCase() !== 'bytes') return null // unknown unit: ignore
  const set = header.slice(eq + 1)
  let ranges: ByteRange[] | undefined
  let specs = 0
  let single: ByteRange | undefined
  for (const raw of set.split(',')) {
    const spec = raw.trim()
    if (spec.length === 0) continue // empty list elements are allowed (RFC 9110 §5.6.1)
    if (++specs > maxRanges) return null
    const dash = spec.indexOf('-')
    if (dash < 0) return null
    let start: number
    let end: number
    if (dash === 0) {
      const suffix = parsePos(spec.slice(1))
      if (Number.isNaN(suffix)) return null
      if (suffix === 0 || size === 0) continue // unsatisfiable spec
      start = Math.max(0, size - suffix)
      end = size - 1
    } else {
      start = parsePos(spec.slice(0, dash))
      if (Number.isNaN(start)) return null
      const last = spec.slice(dash + 1)
      if (last.length === 0) end = Infinity
      else {
        end = parsePos(last)
        if (Number.isNaN(end)) return null
        if (end < start) return null // invalid spec makes the whole header invalid
      }
      if (start >= size) continue // unsatisfiable spec
      if (end >= size) end = size - 1
    }
    if (single === undefined) single = { start, end }
    else (ranges ??= [single]).push({ start, end })
  }
  if (specs === 0) return null // `bytes=` with no spec does not parse
  if (single === undefined) return 'unsatisfiable'
  if (ranges === undefined) return [single]
  return coalesce(ranges)
}

function coalesce(ranges: ByteRange[]): ByteRange[] {
  ranges.sort((a, b) => a.start - b.start)
  const out: ByteRange[] = [ranges[0]!]
  for (let i = 1; i < ranges.length; i++) {
    const r = ranges[i]!
    const last = out[out.length - 1]!
    if (r.start <= last.end + 1 + COALESCE_GAP) last.end = Math.max(last.end, r.end)
    else out.push(r)
  }
  return out
}

export function contentRange(r: ByteRange, size: number): string {
  return `bytes ${r.start}-${r.end}/${size}`
}

export interface MultipartPlan {
  contentType: string
  length: number
  /** per range, the part header that precedes its bytes */
  heads: string[]
  tail: string
}

/** Lays out a multipart/byteranges body (RFC 9110 §14.6) so its length is known before sending. */
export function multipartPlan(ranges: ByteRange[], size: number, type: string, boundary: string): MultipartPlan {
  const heads = ranges.map((r, i) =>
    `${i === 0 ? '' : '\r\n'}--${boundary}\r\ncontent-type: ${type}\r\ncontent-range: ${contentRange(r, size)}\r\n\r\n`)
  const tail = `\r\n--${boundary}--\r\n`
  let length = Buffer.byteLength(tail)
  for (let i = 0; i < ranges.length; i++) length += Buffer.byteLength(heads[i]!) + ranges[i]!.end - ranges[i]!.start + 1
  return { contentType: `multipart/byteranges; boundary=${boundary}`, length, heads, tail }
}
