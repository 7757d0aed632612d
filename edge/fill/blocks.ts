import { crc32c } from '../../lib/integrity/crc32c.js'
import { BLOCK_SIZE } from '../../lib/integrity/block-hasher.js'
import { UpstreamCorruptError } from '../../lib/errors.js'
import { refName, type ChunkRef } from '../title.js'

/**
 * When bytes of a fill may reach players: the release rule of one Fill.
 *
 * A manifest that carries `blocks` anchors each chunk's block list (a CRC32C
 * per 64 KiB block) in the title's digest chain, so a fill can check every
 * block as it completes and release it at once, whatever its position: a
 * short range at a chunk's end (an MP4's moov, WebM cues) is served verified
 * one upstream round trip after the request, as the router serves it, instead
 * of waiting for the whole chunk to be fetched and hashed. For that the
 * fill's requests start at block boundaries (`align`), so every block is seen
 * whole, and a request that breaks off resumes at the start of the block it
 * was in (`resumeAt`): the end of the last verified block.
 *
 * Modes:
 *   'pending'  the list is on its way (fetched alongside the first request):
 *              bytes arrive and wait, nothing is released;
 *   'blocks'   the list is in hand: a block is released once it passes its
 *              CRC32C; one that fails fails the fill (UpstreamCorruptError);
 *   'whole'    no list: the title predates block lists, or the list could
 *              not be had (an older router, an error, a list that does not
 *              match the manifest). Bytes are released as they arrive, and the
 *              Fill holds the chunk's last byte until the whole-chunk SHA-256
 *              verifies, so a response reaching the chunk's end is cut, not
 *              completed, if the chunk is bad.
 * In every mode the whole-chunk SHA-256 alone decides whether the chunk is
 * cached. A fill starts 'pending' only when the manifest lists its blocks;
 * 'pending' ends in 'blocks' or 'whole', once.
 */
export type ReleaseMode = 'pending' | 'blocks' | 'whole'

export class BlockGate {
  mode: ReleaseMode
  /** where requests may start: BLOCK_SIZE when blocks may be checked, else any byte */
  readonly grain: number
  private crcs: Buffer | undefined

  constructor(private readonly ref: ChunkRef, listed: boolean) {
    this.mode = listed && ref.blocks !== undefined ? 'pending' : 'whole'
    this.grain = this.mode === 'pending' ? BLOCK_SIZE : 1
  }

  /** The request boundary at or before `pos`. */
  align(pos: number): number {
    return pos - (pos % this.grain)
  }

  /** The request boundary at or after `pos`. */
  alignUp(pos: number): number {
    return pos % this.grain === 0 ? pos : pos - (pos % this.grain) + this.grain
  }

  /** Where a request that broke off after bytes [.., pos) arrived starts again. */
  resumeAt(pos: number): number {
    return this.mode === 'whole' ? pos : this.align(pos)
  }

  /** The block list arrived (checked against the manifest by the upstream client): blocks are released from now on. */
  listed(crcs: Buffer): void {
    if (this.mode !== 'pending') return
    this.crcs = crcs
    this.mode = 'blocks'
  }

  /** The block list, once in hand (mode 'blocks'). */
  get list(): Buffer | undefined {
    return this.crcs
  }

  /** No block list: bytes are released as they arrive, as for titles without one. */
  unlisted(): void {
    if (this.mode === 'pending') this.mode = 'whole'
  }

  /**
   * Of the bytes [ok, pos) that have arrived in `buf` (`ok` is where the
   * released bytes end: a block boundary or the chunk's end), the end of those
   * that may be released now. Throws if a complete block fails its CRC32C.
   * Blocks within [verifiedFrom, verified) were checked by the request's
   * source against the block list (any list whose digest the manifest holds
   * is this one), so their CRC32C is not taken twice; `verifiedFrom` is where
   * that request started, so nothing before it passes on its word.
   */
  release(buf: Buffer, ok: number, pos: number, verified = 0, verifiedFrom = 0): number {
    if (this.mode === 'whole') return pos
    if (this.mode === 'pending') return ok
    let at = ok
    for (;;) {
      const end = Math.min(at + BLOCK_SIZE, this.ref.size)
      if (at >= pos || end > pos) return at
      const n = at / BLOCK_SIZE
      // blocks its source checked against a list with the same manifest-anchored digest (the same list) pass as they are
      if ((at < verifiedFrom || end > verified) && crc32c(buf.subarray(at, end)) !== this.crcs!.readUInt32BE(4 * n)) {
        throw new UpstreamCorruptError(`chunk ${refName(this.ref)}`,
          `block ${n} (bytes ${at}-${end - 1}) fails its CRC32C from the block list the manifest anchors`)
      }
      at = end
    }
  }
}
