/**
 * Callers waiting their turn for something scarce (a shard's connections,
 * the relay's memory: router/cluster/shard-client.ts, router/read/shard-windows.ts),
 * first come first served. The owner of the scarce thing serves the first in
 * line when it frees enough for that caller's `need`; one that waits `ms`
 * leaves the line and fails with `late()`, and then `onLeave` runs: the
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

  wait(need: number, ms: number, late: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const w = {
        need,
        go: (v: T) => { clearTimeout(w.timer); resolve(v) },
        timer: setTimeout(() => {
          this.q.splice(this.q.indexOf(w), 1)
          reject(late())
          this.onLeave?.()
        }, ms),
      }
      this.q.push(w)
    })
  }

  /** Hands `v` to the first in line. */
  serve(v: T): void {
    this.q.shift()?.go(v)
  }
}
