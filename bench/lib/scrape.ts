import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'

/**
 * What a bench row reads off a running service between measurements: one
 * Prometheus metric from its /metrics, and a wait for a condition on them.
 */

/** Sum of a Prometheus metric's samples whose labels contain `labels` (e.g. 'tier="disk"'). */
export async function metric(base: string, name: string, labels = ''): Promise<number> {
  const r = await request(`${base}/metrics`)
  const text = await r.body.text()
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

export async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`)
    await sleep(100)
  }
}
