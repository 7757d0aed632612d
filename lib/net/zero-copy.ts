import type { Socket } from 'node:net'
import { constants } from 'node:os'
import { loadAddon } from '../native.js'

/**
 * Sending memory into sockets without copying it (issue 16): the project's
 * splice addon (native/splice.c, built by `make build` into dist/native/).
 *
 * Why: writing a RAM hit with writev copies every byte into the kernel; that
 * copy was most of the edge's CPU under 200 players, where nginx's sendfile
 * copies nothing. Measured with a bare server on the tail row's workload
 * (2026-12-06): 0.21 CPU-s per GB spliced against 0.28 copied, and a p99 of
 * 210–230 ms against 430–1200.
 *
 * The rule that keeps it safe: a page handed to the kernel this way is read
 * by it until the peer has the bytes, so only memory from `zeroCopyChunk` is
 * ever sent (`zeroCopyable`), and that memory is written only before its
 * first send or after `recycle`, which gives the pages that were sent fresh
 * ones (the kernel keeps the old ones as long as it needs them). Its writers
 * keep that rule: a fill writes a chunk once, before anything reads it
 * (the arena, edge/tiers/chunk-arena.ts, recycles a slot before the next fill
 * takes it), and cached bytes are never written. A Buffer that is
 * garbage-collected is unmapped, which leaves pages still in flight to the
 * kernel's own references.
 *
 * Only a plain TCP socket can take pages (`spliceFd`): TLS encrypts in user
 * space, so its bytes are copied as before. Without the addon (not built,
 * or it did not load) nothing is zero-copy: `zeroCopyChunk` is
 * Buffer.allocUnsafeSlow and `zeroCopyable` is always false;
 * `ZERO_COPY_MISSING` says why.
 */
interface Addon {
  send(fd: number, buf: Buffer): number
  alloc(size: number): Buffer
  recycle(buf: Buffer, offset: number, length: number): number
  populate(buf: Buffer, offset: number, length: number): Promise<number>
}

const { addon, missing } = loadAddon<Addon>('splice')

/** the addon is there: RAM hits in its memory can be spliced */
export const ZERO_COPY_AVAILABLE = addon !== undefined
/** why it is not (undefined when it is) */
export const ZERO_COPY_MISSING = missing

/** memory from `zeroCopyChunk`, by its ArrayBuffer: the byte range ever sent since it was last recycled (lo === hi: none) */
const pages = new WeakMap<ArrayBufferLike, { lo: number; hi: number }>()

/** Chunk memory whose bytes can be spliced: page-aligned, from the addon (Buffer.allocUnsafeSlow without it). */
export function zeroCopyChunk(size: number): Buffer {
  if (addon === undefined) return Buffer.allocUnsafeSlow(size)
  const buf = addon.alloc(size)
  pages.set(buf.buffer, { lo: 0, hi: 0 })
  return buf
}

/** `piece` lies in memory from `zeroCopyChunk`, so `sendPages` may take it */
export function zeroCopyable(piece: Buffer): boolean {
  return addon !== undefined && pages.has(piece.buffer)
}

/**
 * `buf` starts on a page boundary of memory from `zeroCopyChunk` (a page-aligned
 * mapping of its own), so the kernel can read it for a direct write to disk
 * (O_DIRECT: edge/tiers/chunk-file-write.ts). False for any other memory, whose
 * address JavaScript cannot see.
 */
export function pageAligned(buf: Buffer): boolean {
  return zeroCopyable(buf) && buf.byteOffset % PAGE === 0
}

const PAGE = 4096

/** The socket's file descriptor if pages can go into it: an open plain TCP socket (not TLS). */
export function spliceFd(socket: Socket | null | undefined): number | undefined {
  if (addon === undefined || !socket || socket.destroyed || (socket as Socket & { encrypted?: boolean }).encrypted) return undefined
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}

/**
 * Moves `piece` (zero-copy memory) into the socket behind `fd` without a copy.
 * Returns the bytes the socket took: all of them, fewer when its buffer filled
 * (0: it was full), or -errno when it failed (`peerGone` tells the player
 * leaving from splicing being refused here). Only call it when nothing else
 * is queued for the socket (its writableLength is 0), or the bytes would
 * overtake what Node still holds.
 */
export function sendPages(fd: number, piece: Buffer): number {
  const p = pages.get(piece.buffer)
  if (addon === undefined || p === undefined) throw new Error('sendPages: not memory from zeroCopyChunk')
  // marked before the call: even a send that fails part-way may have handed pages over
  const from = piece.byteOffset
  const to = from + piece.length
  if (p.lo === p.hi) { p.lo = from; p.hi = to } else { p.lo = Math.min(p.lo, from); p.hi = Math.max(p.hi, to) }
  return addon.send(fd, piece)
}

const GONE = new Set([constants.errno.EPIPE, constants.errno.ECONNRESET, constants.errno.ETIMEDOUT, constants.errno.ENOTCONN])

/** a negative result of sendPages that means the player is gone (what a failed write would be) */
export function peerGone(result: number): boolean {
  return GONE.has(-result)
}

/**
 * Faults the pages of `buf` (a whole Buffer from zeroCopyChunk) in, writable,
 * on a thread of libuv's pool, changing no byte: true once done; false (at
 * once for memory that is not the addon's whole Buffer, later if the pool
 * cancelled or refused the work, or `signal` stopped it between steps) when
 * it was not done, and the caller may fault them in itself. The owner may
 * write into `buf` meanwhile.
 * Why: on this VM a fresh 2 MiB huge page costs about 7 ms to fault in, which
 * on the event loop is 7 ms every other request waits. The addon faults each
 * page by touching it, not with MADV_POPULATE_WRITE, which held the process's
 * mmap lock throughout and so stalled the event loop's own allocations
 * (native/splice.c, populate_execute).
 */
export function populate(buf: Buffer, signal?: AbortSignal): Promise<boolean> | false {
  const a = addon
  if (a === undefined || !zeroCopyable(buf) || !whole(buf)) return false
  return (async () => {
    // a step at a time: the pool's threads are the file system's too (the disk tier's reads and writes)
    for (let off = 0; off < buf.length; off += POPULATE_STEP) {
      if (signal?.aborted) return false
      if (await a.populate(buf, off, Math.min(POPULATE_STEP, buf.length - off)) !== 0) return false
    }
    return true
  })()
}

/** bytes one pool task faults in: 8 MiB, about 30 ms on this VM */
const POPULATE_STEP = 8 * 1024 * 1024

/**
 * Before a new owner writes into `buf` (a whole Buffer from zeroCopyChunk):
 * the pages it sent get fresh ones, so bytes still in flight keep the old.
 * False if that failed: then `buf` must not be written.
 */
export function recycle(buf: Buffer): boolean {
  const p = pages.get(buf.buffer)
  if (addon === undefined || p === undefined || p.lo === p.hi) return true
  if (!whole(buf)) throw new Error('recycle: expected the whole Buffer from zeroCopyChunk')
  if (addon.recycle(buf, p.lo, p.hi - p.lo) !== 0) return false
  p.lo = p.hi = 0
  return true
}

/** `buf` is the whole of its memory, not a view of part of it */
function whole(buf: Buffer): boolean {
  return buf.byteOffset === 0 && buf.length === buf.buffer.byteLength
}
