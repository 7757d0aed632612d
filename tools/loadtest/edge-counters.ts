import { request } from 'undici'

/**
 * The edges' own byte counters, read from /metrics before and after a run, so
 * the byte hit ratio and origin offload reported are what the servers counted,
 * not what the load generator guessed.
 */
export interface EdgeCounters {
  served: number
  /** bytes served from RAM, disk, or a fill another request started */
  hitBytes: number
  upstream: number
}

export function parseEdgeCounters(text: string): EdgeCounters {
  const out: EdgeCounters = { served: 0, hitBytes: 0, upstream: 0 }
  for (const line of text.split('\n')) {
    if (line.startsWith('reelcdn_edge_bytes_served_total{')) {
      const v = Number(line.slice(line.lastIndexOf(' ') + 1))
      out.served += v
      if (/result="(ram_hit|disk_hit|coalesced)"/.test(line)) out.hitBytes += v
    } else if (line.startsWith('reelcdn_edge_upstream_bytes_total')) out.upstream += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return out
}

export async function readEdgeCounters(urls: string[]): Promise<EdgeCounters> {
  const all = await Promise.all(urls.map(async u => {
    const res = await request(`${u.replace(/\/$/, '')}/metrics`)
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new Error(`${u}/metrics answered ${res.statusCode}`)
    }
    return parseEdgeCounters(await res.body.text())
  }))
  return all.reduce((a, b) => ({ served: a.served + b.served, hitBytes: a.hitBytes + b.hitBytes, upstream: a.upstream + b.upstream }),
    { served: 0, hitBytes: 0, upstream: 0 })
}

export function cacheDelta(before: EdgeCounters, after: EdgeCounters) {
  const served = after.served - before.served
  const hits = after.hitBytes - before.hitBytes
  const upstream = after.upstream - before.upstream
  return {
    byteHitRatio: served > 0 ? hits / served : null,
    originOffload: served > 0 ? 1 - upstream / served : null,
    edgeBytesServed: served,
    upstreamBytes: upstream,
  }
}
