import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'

/**
 * Reading a running service's /metrics from a bench row, and waiting on it:
 * rows check that what they measure is what they say (hits, no fills in
 * flight, disk writes done) through the service's own counters.
 */

/** Sum of a Prometheus metric's samples whose labels contain `labels` (e.g. 'tier="disk"'). */
export async function metric(base: string, name: string, labels = ''): Promise<number> {
  return sample(await scrape(base), name, labels)
}

/** One read of /metrics (prom-client resets its event-loop delay histogram at every read). */
export async function scrape(base: string): Promise<string> {
  const r = await request(`${base}/metrics`)
  return r.body.text()
}

/** Sum of the samples of `name` whose labels contain `labels`, in a /metrics text. */
export function sample(text: string, name: string, labels = ''): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    if (rest[0] !== ' ' && rest[0] !== '{') continue
    if (labels && !rest.includes(labels)) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

/** An edge with no fill in flight and no chunk still being written to its disk tier: what a measurement after fills waits for. */
export async function edgeQuiet(url: string): Promise<boolean> {
  return (await metric(url, 'reelcdn_edge_fills_in_flight')) === 0 && (await metric(url, 'reelcdn_edge_disk_writes_pending')) === 0
}

/** Polls `cond` every 100 ms until it holds; throws after `timeoutMs`. */
export async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`)
    await sleep(100)
  }
}
