/**
 * A wake-up for a loop that waits: the HLS player's fetch loop sleeps on it
 * while its buffer is full, and a seek or close wakes it at once instead of
 * at the end of the sleep. Every waiter of a notify() is woken; a wait with a
 * time wakes by itself then.
 */
export class Wake {
  private waiters: (() => void)[] = []
  /** Resolves at the next notify(), or after `ms` if given. */
  wait(ms?: number): Promise<void> {
    return new Promise(resolve => {
      let timer: NodeJS.Timeout | undefined
      const done = () => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter(w => w !== done)
        resolve()
      }
      if (ms !== undefined) timer = setTimeout(done, ms)
      this.waiters.push(done)
    })
  }
  notify(): void {
    for (const f of [...this.waiters]) f()
  }
}
