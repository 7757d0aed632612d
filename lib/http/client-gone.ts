import type { ServerResponse } from 'node:http'
import { ClientClosedError } from '../errors.js'

/**
 * Whether a response's client left: the response closed before it finished.
 * A finished response closes too (Node sets `destroyed` then), so `destroyed`
 * alone would take every answered request for an abandoned one. Used where
 * a read waits on the client's behalf (a relay read, an edge miss): what only
 * that client wanted stops when it leaves (docs/security.md, "What a client
 * that leaves stops").
 */
export function clientGone(res: ServerResponse): boolean {
  return res.destroyed && !res.writableFinished
}

/** Runs `fn` once when the client leaves: at once if it has, else at the response's close if it closes unfinished. Returns the listener's removal. */
export function whenClientGone(res: ServerResponse, fn: () => void): () => void {
  if (clientGone(res)) {
    fn()
    return () => {}
  }
  const onClose = () => { if (!res.writableFinished) fn() }
  res.once('close', onClose)
  return () => res.off('close', onClose)
}

/**
 * `p`, or a ClientClosedError as soon as its client leaves (at once if it
 * has): a wait on a client's behalf (an edge miss's first byte, a sibling's
 * block list) ends with its client. What `p` waits on goes on (a fill is
 * shared); its outcome is then no one's.
 */
export function untilClientGone<T>(p: Promise<T>, res: ServerResponse): Promise<T> {
  let off = () => {}
  const gone = new Promise<never>((_, reject) => { off = whenClientGone(res, () => reject(new ClientClosedError())) })
  return Promise.race([p, gone]).finally(off)
}
