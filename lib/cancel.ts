/**
 * What stops a wait or a request before its answer's head, for a caller that
 * makes one per read: an AbortSignal's job without the EventTarget under it.
 * The relay makes a read per player range, and creating, listening to and
 * aborting a signal for each was 3–5 % of the router's busy time on small
 * ranges. `ShardReads.get` (lib/http/shard-read.ts) takes this or an
 * AbortSignal; a `Line` wait (lib/line.ts) takes this.
 *
 * One listener at a time: a Cancel is given to one wait or request at a time
 * (a relay window waits for memory, then for a turn on the shard's
 * connections, then for its head: router/read/shard-windows.ts).
 */
export class Cancel {
  reason: Error | undefined
  private listener: ((reason: Error) => void) | undefined

  get aborted(): boolean {
    return this.reason !== undefined
  }

  /** Stops the wait or request on it, if any; later ones given it fail at once. */
  cancel(reason: Error): void {
    if (this.reason !== undefined) return
    this.reason = reason
    const l = this.listener
    this.listener = undefined
    l?.(reason)
  }

  /** `fn` runs on cancel: one listener, the one wait or request in flight; returns its removal. */
  listen(fn: (reason: Error) => void): () => void {
    this.listener = fn
    return () => { if (this.listener === fn) this.listener = undefined }
  }
}
