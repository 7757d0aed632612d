import { createHash } from 'node:crypto'
import type { Rendition } from '../../lib/media/rendition.js'

/**
 * Checks the bytes an ABR player fetched against the title's manifest
 * (`/v1/content/{id}/meta`, docs/abr.md): a rendition file is stored as
 * `chunkSize` chunks with a SHA-256 each (`rendition.chunks`), so once every
 * byte of one chunk has been fetched, in whatever segments and order, the
 * chunk's digest is checked. Segments are byte ranges much smaller than a
 * chunk, so the pieces of a chunk are held until it is complete; a player
 * that switched rungs leaves the old rung's chunk incomplete, and its bytes
 * are counted as unverified, not as wrong. Pieces are held up to
 * `maxHeldBytes` in all; past that a chunk's bytes are dropped and it is
 * never checked (counted unverified), so memory stays bounded on a long play.
 *
 * A chunk holding bytes after the file's last segment (an `mfra` index) is
 * checked only if those were fetched, which a player never does: it stays
 * unverified. That is the file's last chunk, and the one before it too when
 * the index starts there (the file ends within the index's length past a
 * chunk boundary).
 *
 * A piece fetched twice (after a seek) is held once: pieces are keyed by
 * offset, and a chunk is complete when the pieces, in offset order, tile it.
 */
export interface VerifyCounts {
  /** chunks whose every byte was fetched and whose digest matched */
  chunksOk: number
  /** chunks whose digest did not match: bytes served differ from the stored file */
  chunksBad: number
  bytesVerified: number
  /** bytes fetched in chunks never completed (or dropped past the memory bound) */
  bytesUnverified: number
  /** what went wrong, one line per bad chunk */
  errors: string[]
}

interface Held {
  pieces: Map<number, Buffer>
  bytes: number
  dropped: boolean
  /** checked already: bytes fetched again are neither held nor counted */
  checked: boolean
}

export class ChunkVerifier {
  readonly counts: VerifyCounts = { chunksOk: 0, chunksBad: 0, bytesVerified: 0, bytesUnverified: 0, errors: [] }
  private readonly byId: Map<string, Rendition>
  private readonly held = new Map<string, Held>()
  private heldBytes = 0

  constructor(renditions: readonly Rendition[], readonly chunkSize: number, readonly maxHeldBytes = 256 * 1024 ** 2) {
    if (!(chunkSize > 0)) throw new RangeError(`expected a chunk size above 0, got ${chunkSize}`)
    this.byId = new Map(renditions.map(r => [r.id, r]))
  }

  /** Bytes at `offset` of rendition `rid`'s file. Bytes of an unknown rendition are counted unverified. */
  add(rid: string, offset: number, bytes: Buffer): void {
    const r = this.byId.get(rid)
    if (!r) {
      this.counts.bytesUnverified += bytes.length
      return
    }
    // a segment may straddle a chunk boundary: each part goes to its chunk
    let at = offset
    while (at < offset + bytes.length) {
      const i = Math.floor(at / this.chunkSize)
      const end = Math.min(offset + bytes.length, (i + 1) * this.chunkSize)
      this.addToChunk(r, i, at, bytes.subarray(at - offset, end - offset))
      at = end
    }
  }

  private addToChunk(r: Rendition, i: number, at: number, piece: Buffer): void {
    const key = `${r.id}/${i}`
    let h = this.held.get(key)
    if (!h) this.held.set(key, h = { pieces: new Map(), bytes: 0, dropped: false, checked: false })
    if (h.checked) return
    if (h.dropped) return void (this.counts.bytesUnverified += piece.length)
    if (h.pieces.has(at)) return
    if (this.heldBytes + piece.length > this.maxHeldBytes) {
      h.dropped = true
      this.counts.bytesUnverified += h.bytes + piece.length
      this.release(h)
      return
    }
    h.pieces.set(at, piece)
    h.bytes += piece.length
    this.heldBytes += piece.length
    const from = i * this.chunkSize
    const to = Math.min(r.size, from + this.chunkSize)
    if (h.bytes < to - from) return
    const sorted = [...h.pieces.entries()].sort((a, b) => a[0] - b[0])
    let next = from
    const hash = createHash('sha256')
    for (const [off, buf] of sorted) {
      if (off > next) return // a gap: overlapping pieces made up the count
      if (off + buf.length <= next) continue
      hash.update(buf.subarray(next - off))
      next = off + buf.length
    }
    if (next < to) return
    const digest = hash.digest('hex')
    const want = r.chunks[i]
    if (digest === want) {
      this.counts.chunksOk++
      this.counts.bytesVerified += to - from
    } else {
      this.counts.chunksBad++
      this.counts.errors.push(`${r.id} chunk ${i} (bytes ${from}-${to - 1}): SHA-256 ${digest}, the manifest says ${want}`)
    }
    this.release(h)
    h.checked = true
  }

  private release(h: Held): void {
    this.heldBytes -= h.bytes
    h.pieces.clear()
    h.bytes = 0
  }

  /** The counts, with bytes of chunks never completed added to the unverified ones. */
  finish(): VerifyCounts {
    for (const h of this.held.values()) {
      this.counts.bytesUnverified += h.bytes
      this.release(h)
    }
    return this.counts
  }
}
