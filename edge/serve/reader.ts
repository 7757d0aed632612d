import type { ServerResponse } from 'node:http'
import type { EdgeMetrics } from '../../lib/metrics.js'
import type { ChunkCache } from '../tiers/cache.js'
import type { Coalescer } from '../fill/coalesce.js'
import type { DiskRow } from '../tiers/disk-index.js'
import type { ReadHandle } from '../tiers/disk-handles.js'
import type { Fill } from '../fill/fill.js'
import type { Send, SendPiece } from './send.js'
import { ClientClosedError, CorruptChunkError } from '../../lib/errors.js'
import { clientGone, untilClientGone } from '../../lib/http/client-gone.js'
import { chunkRef, type ChunkRef, type TitleFile } from '../title.js'
import type { FetchedAhead } from './fetched-ahead.js'
import { dropChunk, heldForWrite, holdChunk } from '../tiers/chunk-arena.js'

/**
 * Serving bytes of a title's file (a single-file title's own, or a rendition:
 * edge/title.ts) to a player, chunk by chunk, from wherever each chunk is: RAM
 * (one write of a subarray of the cached Buffer), disk (verified pieces from
 * the file) or a fill (bytes as they arrive). Every chunk read also asks for
 * readahead of the next `readahead` chunks of the same file: a viewer reads
 * one rendition on, and after a rung switch reads the new one from where it
 * is, so readahead follows it there. A read that `moves` nothing (a
 * rendition's init segment, which players read on every switch) starts no
 * readahead and moves no session. On a miss, readahead starts once the
 * player's first byte has arrived and been written (the turn after), so the
 * next chunk's requests do not share the upstream with the one the player
 * waits for, and starting its fill does not delay that byte.
 *
 * `open` runs before the response's headers for the first chunk, so every
 * failure it can meet (upstream down, timeout, corrupt upstream bytes before
 * the first one arrives) is still a clean JSON 502/504; for a miss it returns
 * once the first requested byte has arrived. After the headers, a failure can
 * only cut the response, which HttpService does.
 *
 * A disk copy found corrupt while it is being sent (a block failing its CRC;
 * the tier drops the chunk) fails nothing: the bytes not sent yet come from a
 * fill, as on a miss, so the player still gets every byte, all verified.
 *
 * Accounting (lib/metrics.ts): each chunk read counts once, by where it found
 * the chunk, and its bytes once they went out. Only ram_hit and disk_hit are
 * hits; `coalesced` (joined a fill in flight, whoever started it) is not. The
 * ledger of chunks fetched ahead (fetched-ahead.ts) learns of every read, so
 * readahead that no player reads is counted as waste.
 *
 * Chunk memory (edge/tiers/chunk-arena.ts): a RAM or fill Source holds its
 * chunk's memory from the synchronous lookup that found it until `release`,
 * and each write of it holds it until the socket's callback, so a slot the
 * tiers let go of is not reused while this player can still read it.
 */
export type Result = 'ram_hit' | 'disk_hit' | 'miss' | 'coalesced'

export interface Source {
  index: number
  result: Result
  buf: Buffer | undefined
  row: DiskRow | undefined
  handle: ReadHandle | undefined
  fill: Fill | undefined
  /** the Source holds its chunk's memory (a RAM or fill source) until `release` */
  held?: boolean
  /** read for a sibling's peer fill (edge/site/peer-serve.ts), not a player: in none of the player counters (the peer's own count it) */
  peer?: boolean
}

/**
 * Optional observers of player reads, given the request's session (edge/serve/session-id.ts;
 * for a rendition, the session's stream of its kind: `streamOf`):
 * `position` before each chunk is read (session-aware retention), `read` after
 * its bytes went out (the request log).
 */
export interface ReadHooks {
  /** `reading`: the read stops short of the chunk's end, so the viewer will be back for more of it */
  position?(session: string, file: TitleFile, index: number, reading: boolean): void
  read?(ref: ChunkRef, result: Result, bytes: number, session: string): void
}

export class TitleReader {
  constructor(
    private readonly cache: ChunkCache,
    private readonly fills: Coalescer,
    private readonly metrics: EdgeMetrics,
    private readonly send: Send,
    private readonly readahead: number,
    readonly hooks: ReadHooks = {},
    private readonly ahead?: FetchedAhead,
  ) {}

  /**
   * Chunk `index` if RAM holds it (no await: the hit path); undefined otherwise, then call `open` with `ramLooked`.
   * `moves`: the read is where the viewer is (false for an init segment): it starts readahead.
   */
  openRam(file: TitleFile, index: number, moves = true, peer = false): Source | undefined {
    const key = chunkRef(file, index).key
    const buf = this.cache.ram.get(key)
    if (buf === undefined) return undefined
    holdChunk(buf)
    this.ahead?.read(key)
    if (moves) this.readAhead(file, index)
    if (!peer) this.metrics.hot.reads.ram_hit.n++
    return { index, result: 'ram_hit', buf, row: undefined, handle: undefined, fill: undefined, held: true, peer }
  }

  /**
   * Where chunk `index` comes from, ready to send byte `offset` of it.
   * `ramLooked`: `openRam` just missed, so the first look skips RAM (a lookup
   * counts for the policy, and one read must count once). `moves` and `peer` as in `openRam`.
   * `res`: the response it is for; a miss whose client leaves before its
   * first byte ends then (ClientClosedError), starts no readahead, and tells
   * the fills it left (a fill still waiting for a slot that no one else
   * wants is withdrawn: Coalescer.leave).
   */
  async open(file: TitleFile, index: number, offset: number, ramLooked = false, moves = true, peer = false, res?: ServerResponse): Promise<Source> {
    const reads = peer ? undefined : this.metrics.hot.reads
    const ref = chunkRef(file, index)
    for (;;) {
      const buf = ramLooked ? undefined : this.cache.ram.get(ref.key)
      ramLooked = false
      if (buf !== undefined) {
        holdChunk(buf)
        this.ahead?.read(ref.key)
        if (moves) this.readAhead(file, index)
        if (reads) reads.ram_hit.n++
        return { index, result: 'ram_hit', buf, row: undefined, handle: undefined, fill: undefined, held: true, peer }
      }
      const row = this.cache.disk.get(ref.key)
      if (row !== undefined) {
        if (moves) this.readAhead(file, index)
        const handle = await this.cache.disk.openRead(row)
        if (handle !== undefined) {
          this.ahead?.read(ref.key)
          this.cache.promote(row)
          if (reads) reads.disk_hit.n++
          return { index, result: 'disk_hit', buf: undefined, row, handle, fill: undefined, peer }
        }
      }
      // gone while its title's manifest or a disk lookup was on its way: no fill for it
      if (res !== undefined && clientGone(res)) throw new ClientClosedError()
      const got = this.fills.join(ref, offset)
      if (got === undefined) continue // cached while we looked on disk
      // held in the step that found it: its memory may be reused once the fill committed and the tiers let go
      got.fill.hold()
      if (got.joined) this.ahead?.read(ref.key)
      else this.ahead?.missed(ref.key)
      const result = got.joined ? 'coalesced' : 'miss'
      if (reads) reads[result].n++
      // readahead once the first byte is here: the demand fill first, so readahead never takes the slot it needs,
      // nor the upstream's bandwidth before the player's first byte (the next chunk's first requests would share it);
      // and only once that byte went out: the caller writes it in this turn, and a fill's start (its chunk-sized
      // buffer can set off a GC) and its requests would come before it
      try {
        // the wait itself stops at its next turn once the client left (it asks for no segment at its offset after)
        await (res === undefined ? got.fill.waitFor(offset) : untilClientGone(got.fill.waitFor(offset, () => clientGone(res)), res))
      } catch (err) {
        got.fill.drop()
        if (err instanceof ClientClosedError) this.fills.leave(got.fill)
        throw err
      }
      // not for a client that left meanwhile (a short response may have finished already: that one did not leave)
      if (moves) setImmediate(() => { if (res === undefined || !clientGone(res)) this.readAhead(file, index) })
      return { index, result, buf: undefined, row: undefined, handle: undefined, fill: got.fill, held: true, peer }
    }
  }

  /** A hit a serve thread answered: what serving it here would have done besides sending (recency, promotion, readahead, session). */
  servedElsewhere(file: TitleFile, index: number, bytes: number, session: string, moves = true, result: 'ram_hit' | 'disk_hit' = 'ram_hit'): void {
    const ref = chunkRef(file, index)
    if (result === 'ram_hit') this.cache.ram.touch(ref.key)
    else {
      const row = this.cache.disk.touch(ref.key)
      if (row !== undefined) this.cache.promote(row)
    }
    this.ahead?.read(ref.key)
    if (moves) this.readAhead(file, index)
    if (session === '') return
    // a thread's hit says how many bytes, not where they ended: the chunk is held already, and counts as read through
    if (moves) this.hooks.position?.(session, file, index, false)
    this.hooks.read?.(ref, result, bytes, session)
  }

  private readAhead(file: TitleFile, index: number): void {
    const last = Math.min(index + this.readahead, file.chunks.length - 1)
    for (let j = index + 1; j <= last; j++) {
      const ref = chunkRef(file, j)
      const result = this.fills.prefetch(ref)
      this.metrics.hot.readahead[result].n++
      if (result === 'started') this.ahead?.started(ref)
    }
  }

  /** Closes what a source holds, once (a source that was written from: its writes hold their own). */
  release(src: Source | undefined): void {
    if (src?.handle) this.cache.disk.release(src.handle)
    if (src?.held) {
      src.held = false
      if (src.buf !== undefined) dropChunk(src.buf)
      else src.fill?.drop()
    }
  }

  /**
   * Writes bytes [start, end] (inclusive) of the file. `first` is the source
   * opened before the headers, used if it is the chunk `start` falls in.
   */
  async writeRange(file: TitleFile, start: number, end: number, res: ServerResponse, first: { src: Source | undefined; peer?: boolean }, session?: string,
    moves = true): Promise<void> {
    const cs = file.chunkSize
    const { position, read } = this.hooks
    for (let i = Math.floor(start / cs); i <= Math.floor(end / cs); i++) {
      const base = i * cs
      const from = Math.max(start, base) - base
      const to = Math.min(end, base + cs - 1) - base
      if (session !== undefined && moves) position?.(session, file, i, stopsShort(file, i, to))
      let src = first.src
      if (src !== undefined && src.index === i) first.src = undefined
      else src = await this.open(file, i, from, false, moves, first.peer === true, res)
      await this.write(file, src, from, to, res)
      if (session !== undefined) read?.(chunkRef(file, i), src.result, to - from + 1, session)
    }
  }

  private async write(file: TitleFile, src: Source, from: number, to: number, res: ServerResponse): Promise<void> {
    let rest: number | undefined
    try {
      if (src.buf !== undefined) await this.send(res, src.buf.subarray(from, to + 1), heldForWrite(src.buf))
      else if (src.handle !== undefined) rest = await this.fromDisk(src, from, to, res)
      else await this.fromFill(src.fill!, from, to, res)
    } finally {
      this.release(src)
    }
    this.count(file, src, (rest ?? to + 1) - from)
    if (rest !== undefined) await this.write(file, await this.open(file, src.index, rest, false, false, src.peer === true, res), rest, to, res)
  }

  /** Bytes sent to a player: by where they came from, and by the kind of file. */
  private count(file: TitleFile, src: Source, n: number): void {
    if (src.peer === true) return
    this.metrics.hot.bytes[src.result].n += n
    this.metrics.hot.files[file.kind][src.result].n += n
    if (src.fill?.fromSibling === true) this.metrics.hot.sibling.n += n
  }

  /**
   * Bytes [from, to] of a disk source (with `ends`, its last piece ends the
   * response). Returns undefined once all went out, or, if the chunk turned
   * out corrupt (the tier has dropped it), the first byte not sent.
   */
  private async fromDisk(src: Source, from: number, to: number, res: ServerResponse, ends?: Send['end']): Promise<number | undefined> {
    let at = from
    const counted: SendPiece = (r, piece, written) => {
      at += piece.length
      return this.send(r, piece, written)
    }
    try {
      await this.cache.disk.writeRange(src.row!, src.handle!, from, to, res, counted, ends)
      return undefined
    } catch (err) {
      if (err instanceof CorruptChunkError && !res.destroyed) return at
      throw err
    }
  }

  /**
   * The RAM hit path: bytes [from, to] (inclusive) of the RAM source's chunk
   * are the whole body, sent with the headers in one write of a subarray of
   * the cached Buffer (no copy) and ended at once.
   */
  sendRam(file: TitleFile, src: Source, from: number, to: number, res: ServerResponse, session?: string, moves = true): void {
    try {
      this.endWith(file, src, from, to, res, session, moves)
    } finally {
      this.release(src)
    }
  }

  /**
   * The disk hit path: bytes [from, to] of the disk source's chunk are the
   * whole body; its last piece ends the response. Releases the source.
   */
  async sendDisk(file: TitleFile, src: Source, from: number, to: number, res: ServerResponse, session?: string, moves = true): Promise<void> {
    try {
      await this.endWith(file, src, from, to, res, session, moves)
    } finally {
      this.release(src)
    }
  }

  private endWith(file: TitleFile, src: Source, from: number, to: number, res: ServerResponse, session: string | undefined, moves: boolean): void | Promise<void> {
    const { position, read } = this.hooks
    if (session !== undefined && moves) position?.(session, file, src.index, stopsShort(file, src.index, to))
    const done = (sent = to + 1) => {
      this.count(file, src, sent - from)
      if (session !== undefined) read?.(chunkRef(file, src.index), src.result, to - from + 1, session)
    }
    if (src.buf !== undefined) {
      this.send.end(res, src.buf.subarray(from, to + 1), heldForWrite(src.buf))
      return done()
    }
    return this.fromDisk(src, from, to, res, this.send.end).then(async rest => {
      done(rest)
      if (rest === undefined) return
      await this.write(file, await this.open(file, src.index, rest, false, false, false, res), rest, to, res)
      res.end()
    })
  }

  private async fromFill(fill: Fill, from: number, to: number, res: ServerResponse): Promise<void> {
    let pos = from
    while (pos <= to) {
      await fill.waitFor(pos)
      const avail = Math.min(fill.availableFrom(pos), to + 1)
      await this.send(res, fill.buf.subarray(pos, avail), heldForWrite(fill.buf))
      pos = avail
    }
  }
}

/** Whether a read of chunk `index` ending at byte `to` of it (inclusive) stops short of the chunk's end. */
function stopsShort(file: TitleFile, index: number, to: number): boolean {
  return to < Math.min(file.chunkSize, file.size - index * file.chunkSize) - 1
}
