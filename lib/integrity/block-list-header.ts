import { blockListBytes, blockListMatches } from './block-hasher.js'

/**
 * A chunk's block list in the head of its data answer (issue 16, a cold
 * miss's first byte).
 *
 * Why: an edge filling from a shard verifies every 64 KiB block against the
 * chunk's block list (4 bytes per block) before it hands a byte on, and it
 * asked for that list with a request of its own, in parallel with the data.
 * Traced on a deep seek into a cold chunk, the list's answer came 3–7 ms
 * after the data's head: the shard answers the list only after the turn in
 * which it writes the data's first megabytes, and the first verified block
 * waited for it. Sent in the data's head, the list arrives before the first
 * byte it checks, on the same connection.
 *
 * A reader asks for it (`WANT_BLOCK_LIST`: 1) and the shard adds it
 * (`BLOCK_LIST`, base64) when the list is at most BLOCK_LIST_HEAD_MAX bytes
 * (chunks of up to 96 MiB at 64 KiB blocks: 8 KiB of base64, well inside the
 * 16 KiB of head its readers parse: lib/http/shard-read.ts HEAD_MAX, and
 * undici's default maxHeaderSize; a larger chunk's answer carries none). The
 * reader trusts it only as it trusts a list from anywhere: the right length,
 * and the digest the manifest holds.
 * Anything else is ignored, and the list's own request decides.
 */
export const WANT_BLOCK_LIST = 'reelcdn-want-block-crcs'
export const BLOCK_LIST = 'reelcdn-block-crcs'
const BLOCK_LIST_HEAD_MAX = 6 * 1024

/** A chunk of `size` bytes has its list in its data answer's head (at most BLOCK_LIST_HEAD_MAX bytes of list). */
export function listFitsHead(size: number): boolean {
  return blockListBytes(size) <= BLOCK_LIST_HEAD_MAX
}

/** The header for a data answer's head, or nothing when the list is too long for one. */
export function blockListHead(crcs: Buffer): Record<string, string> {
  return crcs.length <= BLOCK_LIST_HEAD_MAX ? { [BLOCK_LIST]: crcs.toString('base64') } : {}
}

/** The list in an answer's head, if it is there and is the one the manifest anchors (`digest`) for a chunk of `size` bytes. */
export function blockListFromHead(value: string | string[] | undefined, size: number, digest: string): Buffer | 'mismatch' | undefined {
  if (typeof value !== 'string') return undefined
  const crcs = Buffer.from(value, 'base64')
  return blockListMatches(crcs, size, digest) ? crcs : 'mismatch'
}
