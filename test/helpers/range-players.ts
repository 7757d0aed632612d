import { request } from 'undici'

/**
 * A bounded player load for reload and upgrade tests: `players` loops, each
 * reading random single ranges of one title and comparing every byte with the
 * source, until `stop()` or `maxRequests` in all. A failure (a refused
 * connection, a status other than 206, a short or wrong body) is counted with
 * its reason, never thrown, so a test asserts on `failures` at the end.
 */
export interface RangePlayers {
  readonly done: number
  readonly failures: string[]
  /** resolves once `n` more requests have finished (a barrier on progress, not on time) */
  progressed(n: number): Promise<void>
  stop(): Promise<void>
}

export function rangePlayers(url: () => string, source: Buffer, o: { players: number; maxRequests: number; rangeBytes: number }): RangePlayers {
  let done = 0
  let stopped = false
  const failures: string[] = []
  const waiters: { at: number; resolve: () => void }[] = []
  let seed = 12345
  const rand = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff }
  const one = async () => {
    const start = Math.floor(rand() * (source.length - o.rangeBytes))
    const end = start + o.rangeBytes - 1
    try {
      const res = await request(`${url()}`, { headers: { range: `bytes=${start}-${end}` } })
      const body = Buffer.from(await res.body.arrayBuffer())
      if (res.statusCode !== 206) failures.push(`status ${res.statusCode}`)
      else if (!body.equals(source.subarray(start, end + 1))) failures.push(`wrong bytes at ${start}-${end} (${body.length} bytes)`)
    } catch (err) {
      failures.push(`${(err as Error).message} (${(err as { code?: string }).code ?? ''})`)
    }
    done++
    for (const w of waiters.filter(w => done >= w.at)) { waiters.splice(waiters.indexOf(w), 1); w.resolve() }
  }
  const loops = Array.from({ length: o.players }, async () => {
    while (!stopped && done < o.maxRequests) await one()
  })
  const all = Promise.all(loops).then(() => { for (const w of waiters.splice(0)) w.resolve() })
  return {
    get done() { return done },
    failures,
    progressed: n => new Promise(resolve => {
      const at = done + n
      if (done >= at || stopped || done >= o.maxRequests) resolve()
      else waiters.push({ at, resolve })
    }),
    stop: async () => { stopped = true; await all },
  }
}
