import { UpstreamTimeoutError } from '../../lib/errors.js'
import { chunkName } from '../../lib/ids.js'
import type { CrcsFetch } from './fill.js'
import { retryReason, translateUpstreamError } from './upstream.js'

/**
 * A fill's request for its chunk's block list (fill.ts asks once per fill,
 * alongside its first chunk request), with a timeout of its own and one retry.
 *
 * Theory of operation. Until the list arrives or fails, the fill releases no
 * byte (blocks.ts, mode 'pending'): every reader of the chunk waits on it. So
 * the request may not take the upstream's headers timeout (10 s, and undici
 * checks it on a coarse clock): it gets `timeoutMs` of its own, the body
 * included. A failure another request may not meet (a timeout, a cut, a
 * 502/503: `retryReason`) is asked again once, at once: a list is a few
 * hundred bytes, and a second wait would hold the readers longer than the
 * whole-chunk rule costs them. When that fails too, the fill goes on under the
 * whole-chunk rule (bytes as they arrive, the chunk's last byte once the chunk
 * verifies), and the coalescer counts and (rate-limited) logs it. A 404 (a
 * router older than block lists), a refused credential or a list that does not
 * match the manifest is final at once. The fill's own signal ends either try:
 * the fill has failed, or the edge is closing.
 */
export function blockListFetch(fetch: CrcsFetch, timeoutMs: number): CrcsFetch {
  const once: CrcsFetch = async (ref, signal) => {
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(new UpstreamTimeoutError(
      `the block list of chunk ${chunkName(ref.contentId, ref.index)} (no answer within edge.blockListTimeoutMs = ${timeoutMs} ms)`)), timeoutMs)
    try {
      return await fetch(ref, AbortSignal.any([signal, ac.signal]))
    } finally {
      clearTimeout(timer)
    }
  }
  return async (ref, signal) => {
    try {
      return await once(ref, signal)
    } catch (err) {
      const e = translateUpstreamError(err, `the block list of chunk ${chunkName(ref.contentId, ref.index)}`, signal)
      if (signal.aborted || retryReason(e) === undefined) throw e
      return await once(ref, signal)
    }
  }
}

/**
 * The block list a source fetched for a fill of chunk `key` (kept in `lists`
 * under the chunk's key), once it is in; undefined when none was asked or it
 * failed (the fill's gate and digest decide then). The fill asks again once
 * when its first try fails (above), which replaces the promise: wait for the
 * latest, a few times at most.
 */
export async function latestBlockList(lists: { get(key: string): Promise<Buffer> | undefined }, key: string): Promise<Buffer | undefined> {
  for (let tries = 0; tries < 3; tries++) {
    const p = lists.get(key)
    if (p === undefined) return undefined
    try {
      return await p
    } catch {
      if (lists.get(key) === p) return undefined
    }
  }
  return undefined
}

/** Keeps `p`, a source's fetch of chunk `key`'s block list, where `latestBlockList` finds it; its failure is the fill's to see, not unhandled. */
export function rememberBlockList(lists: { set(key: string, p: Promise<Buffer>): unknown }, key: string, p: Promise<Buffer>): Promise<Buffer> {
  p.catch(() => {})
  lists.set(key, p)
  return p
}

/**
 * A fill's block list from whichever comes first: its own request, or a data
 * answer that carried it in its head (lib/integrity/block-list-header.ts:
 * the first block then need not wait for the list's own answer, which a
 * shard busy writing the data sends late).
 *
 * `race(key, own)` starts the fill's wait for chunk `key` with its own
 * request, which gets `decided()` to stop asking further owners (and to count
 * and log nothing more) once the wait is settled. `offer(key, crcs)` settles
 * it with a list from a head, already checked against the manifest.
 * `waiting(key)`: a fill's wait is open, so a data request asks for the list
 * in its head (none once it is settled). blockListFetch's retry calls `race`
 * again for the same key while the first may still be settling: an entry is
 * removed only by the wait that set it, so an offer always reaches the latest.
 */
export class HeadLists {
  private readonly open = new Map<string, (crcs: Buffer) => void>()

  race(key: string, own: (decided: () => boolean) => Promise<Buffer>): Promise<Buffer> {
    let decided = false
    let settle!: (crcs: Buffer) => void
    const p = new Promise<Buffer>((resolve, reject) => {
      settle = resolve
      own(() => decided).then(resolve, reject)
    })
    this.open.set(key, settle)
    const close = () => {
      decided = true
      if (this.open.get(key) === settle) this.open.delete(key)
    }
    p.then(close, close)
    return p
  }

  offer(key: string, crcs: Buffer): void {
    this.open.get(key)?.(crcs)
  }

  waiting(key: string): boolean {
    return this.open.has(key)
  }
}
