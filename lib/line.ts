import type { Cancel } from './cancel.js'

/**
 * Callers waiting their turn for something scarce (a shard's connections,
 * the relay's memory: router/cluster/shard-client.ts, router/read/shard-windows.ts),
 * first come first served. The owner of the scarce thing serves the first in
 * line when it frees enough for that caller's `need`; one that waits `ms`
 * leaves the line and fails with `late()`, one whose `Cancel` fires (a relay
 * read whose client left) leaves it at once, and then `onLeave` runs: the
 * one behind it may need less than it did, and fit now.
 */
export class Line<T> {
  private readonly q: { need: number; go: (v: T) => void; timer: NodeJS.Timeout }[] = []

  constructor(private readonly onLeave?: () => void) {}

  get length(): number {
    return this.q.length
  }

  /** What the first in line waits for (its `need`); undefined when no one waits. */
  get firstNeed(): number | undefined {
    return this.q[0]?.need
  }

  /** Waits for the owner's `serve`; fails with `late()` after `ms`, or with the reason at once when `cancel` fires (leaving the line either way). */
  wait(need: number, ms: number, late: () => Error, cancel?: Cancel): Promise<T> {
    if (cancel?.reason) return Promise.reject(cancel.reason)
    return new Promise<T>((resolve, reject) => {
      const leave = (err: Error) => {
        clearTimeout(w.timer)
        detach?.()
        this.q.splice(this.q.indexOf(w), 1)
        reject(err)
        this.onLeave?.()
      }
      const w = {
        need,
        go: (v: T) => { clearTimeout(w.timer); detach?.(); resolve(v) },
        timer: setTimeout(() => leave(late()), ms),
      }
      const detach = cancel?.listen(leave)
      this.q.push(w)
    })
  }

  /** Hands `v` to the first in line. */
  serve(v: T): void {
    this.q.shift()?.go(v)
  }
}
