import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'

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
 * ever sent (`zeroCopyable`), and that memory is `recycle`d (given fresh
 * pages) before anyone writes into it again, if it was ever sent. The only
 * writer of such memory is the edge's chunk arena (edge/tiers/chunk-arena.ts),
 * which recycles a slot before a new fill takes it; cached bytes are never
 * written otherwise (a slot is written once, by its fill, before it is read).
 * A Buffer that is garbage-collected is unmapped, which leaves pages still in
 * flight to the kernel's own references.
 *
 * Only a plain TCP socket can take pages (`spliceFd`): TLS encrypts in user
 * space, so its bytes are copied as before. Without the addon (no C compiler
 * at build time) nothing is zero-copy: `zeroCopyChunk` is
 * Buffer.allocUnsafeSlow and `zeroCopyable` is always false.
 */
interface Addon {
  send(fd: number, buf: Buffer, offset: number, length: number): number
  alloc(size: number): Buffer
  recycle(buf: Buffer): number
}

/** where the addon is built (dist/native/, beside dist/lib/) */
export const SPLICE_ADDON = fileURLToPath(new URL('../../native/splice.node', import.meta.url))

const addon: Addon | undefined = existsSync(SPLICE_ADDON) ? createRequire(import.meta.url)(SPLICE_ADDON) as Addon : undefined

/** the addon is there: RAM hits in its memory can be spliced */
export const ZERO_COPY_AVAILABLE = addon !== undefined

/** memory from `zeroCopyChunk`, by its ArrayBuffer, and whether the kernel may still hold its pages */
const pages = new WeakMap<ArrayBufferLike, { sent: boolean }>()

/** Chunk memory whose bytes can be spliced: page-aligned, from the addon (Buffer.allocUnsafeSlow without it). */
export function zeroCopyChunk(size: number): Buffer {
  if (addon === undefined) return Buffer.allocUnsafeSlow(size)
  const buf = addon.alloc(size)
  pages.set(buf.buffer, { sent: false })
  return buf
}

/** `piece` lies in memory from `zeroCopyChunk`, so `sendPages` may take it */
export function zeroCopyable(piece: Buffer): boolean {
  return addon !== undefined && pages.has(piece.buffer)
}

/** The socket's file descriptor if pages can go into it: an open plain TCP socket (not TLS). */
export function spliceFd(socket: Socket | null | undefined): number | undefined {
  if (addon === undefined || !socket || socket.destroyed || (socket as Socket & { encrypted?: boolean }).encrypted) return undefined
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}

/**
 * Moves `piece` (zero-copy memory) into the socket behind `fd` without a copy.
 * Returns the bytes the socket took: all of them, fewer when its buffer filled
 * (0: it was full), or -errno when it failed (the peer is gone: EPIPE,
 * ECONNRESET). Only call it when nothing else is queued for the socket (its
 * writableLength is 0), or the bytes would overtake what Node still holds.
 */
export function sendPages(fd: number, piece: Buffer): number {
  const p = pages.get(piece.buffer)
  if (addon === undefined || p === undefined) throw new Error('sendPages: not memory from zeroCopyChunk')
  p.sent = true
  return addon.send(fd, piece, 0, piece.length)
}

/**
 * Before a new owner writes into `buf` (a whole Buffer from zeroCopyChunk):
 * if its pages were ever sent, the mapping gets fresh ones, so bytes still in
 * flight keep the old. False if that failed: then `buf` must not be written.
 */
export function recycle(buf: Buffer): boolean {
  const p = pages.get(buf.buffer)
  if (addon === undefined || p === undefined || !p.sent) return true
  if (addon.recycle(buf) !== 0) return false
  p.sent = false
  return true
}
