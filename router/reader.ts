import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { createHash, type Hash } from 'node:crypto'
import type { Logger } from '../lib/logger.js'
import type { RouterMetrics } from '../lib/metrics.js'
import { toCdnError, UpstreamError } from '../lib/errors.js'
import { chunkLength, type Manifest } from '../lib/manifest.js'
import { drained } from '../lib/representation.js'
import { chunkName } from '../lib/ids.js'
import { chunkKey, storageId } from './keys.js'
import { ClientGoneError, NoReplicaError } from './errors.js'
import type { Cluster } from './cluster.js'
import type { ShardClient } from './shard-client.js'

/**
 * read(K, offset): streams byte ranges of a title to a client, chunk by chunk,
 * failing over between copies without the client noticing.
 *
 * Theory of operation. For chunk i, the shards are tried in the cluster's read
 * order (least-loaded healthy owner first). Each attempt asks for the bytes
 * from the position already reached to the end of the wanted range, with
 * If-Match on the manifest's chunk digest. If the attempt cannot start (down,
 * timeout, 5xx, 404, 412) or its body breaks off (reset, body timeout, short
 * body), the next shard is asked for the rest. Bytes are forwarded as they
 * arrive, so a failover costs one request, never a re-send.
 *
 * Why forwarding unverified-by-us bytes is safe: a shard checks every 64 KiB
 * block's CRC32C before sending it and cuts the response instead of sending a
 * corrupt block, so each byte that reaches us was verified against what was
 * written; the If-Match pins which bytes were written. A partial range cannot
 * be checked against the chunk's SHA-256, and holding back a whole chunk
 * (64 MiB) before the first byte would cost every read that latency and RAM.
 *
 * End-to-end check: whenever a response carries a whole chunk (edge fills via
 * /chunks/i, full-title reads), its bytes are also hashed as they pass, and
 * the last piece received (at most one socket read, ~64 KiB) is held back
 * until the digest at the chunk's end matches the manifest's. A mismatch means
 * corruption after the shard's check (RAM, NIC, a bug, a lying shard): what
 * was forwarded cannot be recalled, so the response is cut short of its
 * Content-Length — the client sees a failed read, never a complete wrong
 * chunk — and the mismatch is counted and logged with the shards that served
 * it. This is the one case where a client sees a failure while a good copy
 * exists; a retry is served in read order again. Edges verify the same digest.
 */
export class ChunkReader {
  constructor(
    private readonly cluster: Cluster,
    private readonly metrics: RouterMetrics,
    private readonly logger: Logger,
    private readonly verifyWholeChunks: boolean,
  ) {}

  /**
   * Opens the first bytes of [start, end] of chunk `index` before any header
   * is sent, so that a title with no reachable copy is a 503, not a cut body.
   */
  async prepare(m: Manifest, index: number, start: number, end: number): Promise<Prepared> {
    const order = this.cluster.readOrder(chunkKey(storageId(m.contentId, m.version), index))
    let lastErr: Error | undefined
    for (let i = 0; i < order.length; i++) {
      try {
        const body = await order[i]!.openChunk(storageId(m.contentId, m.version), index, m.chunks[index]!, start, end)
        return { index, start, end, body, shard: order[i]!, rest: order.slice(i + 1) }
      } catch (err) {
        lastErr = err as Error
        this.failover(err)
      }
    }
    throw new NoReplicaError(`chunk ${chunkName(m.contentId, index)}`, { cause: lastErr })
  }

  /** Writes title bytes [start, end] (inclusive) to `res`, crossing chunk boundaries. */
  async writeRange(m: Manifest, start: number, end: number, res: ServerResponse, first?: Prepared): Promise<void> {
    const cs = m.chunkSize
    for (let i = Math.floor(start / cs); i <= Math.floor(end / cs); i++) {
      const base = i * cs
      const from = Math.max(start, base) - base
      const to = Math.min(end, base + chunkLength(m, i) - 1) - base
      const pre = first && first.index === i && first.start === from && first.end === to ? first : undefined
      await this.writeChunk(m, i, from, to, res, pre)
    }
  }

  /** Writes bytes [from, to] of chunk `index`, failing over between shards. */
  async writeChunk(m: Manifest, index: number, from: number, to: number, res: ServerResponse, pre?: Prepared): Promise<void> {
    const sid = storageId(m.contentId, m.version)
    const sha = m.chunks[index]!
    const whole = this.verifyWholeChunks && from === 0 && to === chunkLength(m, index) - 1
    const hash: Hash | undefined = whole ? createHash('sha256') : undefined
    const served: string[] = []
    let held: Buffer | undefined
    let pos = from
    let lastErr: Error | undefined
    const order = pre ? [pre.shard, ...pre.rest] : this.cluster.readOrder(chunkKey(sid, index))
    for (let i = 0; i < order.length && pos <= to; i++) {
      const shard = order[i]!
      let body: Readable
      if (pre && i === 0) body = pre.body
      else {
        try {
          body = await shard.openChunk(sid, index, sha, pos, to)
        } catch (err) {
          lastErr = err as Error
          this.failover(err)
          continue
        }
      }
      served.push(shard.id)
      const began = pos
      try {
        for await (const buf of body as AsyncIterable<Buffer>) {
          pos += buf.length
          let out = buf
          if (hash) {
            hash.update(buf)
            // hold back the latest piece: the chunk's last bytes go out only once its digest checks
            out = held ?? EMPTY
            held = buf
          }
          if (out.length > 0 && !res.write(out)) await drained(res).catch(() => { throw new ClientGoneError() })
        }
      } catch (err) {
        body.destroy()
        this.metrics.bytesServed.inc(pos - began)
        if (err instanceof ClientGoneError || res.destroyed) throw new ClientGoneError()
        lastErr = err as Error
        this.failover(err)
        continue
      }
      this.metrics.bytesServed.inc(pos - began)
      if (pos <= to) {
        lastErr = new UpstreamError(`shard ${shard.id} ended chunk ${chunkName(sid, index)} at byte ${pos} of ${to + 1}`)
        this.failover(lastErr)
      }
    }
    if (pos <= to) throw new NoReplicaError(`chunk ${chunkName(sid, index)} from byte ${pos}`, { cause: lastErr })
    if (hash && hash.digest('hex') !== sha) {
      this.metrics.digestMismatches.inc()
      this.logger.error({ chunk: chunkName(sid, index), shards: served }, 'chunk bytes do not match the manifest digest; response cut')
      throw new UpstreamError(`chunk ${chunkName(sid, index)} failed end-to-end verification (served by ${served.join(', ')})`)
    }
    if (held && !res.write(held)) await drained(res).catch(() => { throw new ClientGoneError() })
  }

  private failover(err: unknown): void {
    const e = toCdnError(err)
    const reason = e.code === 'CDN_ERR_UPSTREAM_TIMEOUT' ? 'timeout'
      : e.code === 'CDN_ERR_UPSTREAM' ? 'transport'
        : e.code === 'CDN_ERR_SHARD_REFUSED' ? 'refused' : 'other'
    this.metrics.failovers.inc({ reason })
  }
}

const EMPTY = Buffer.alloc(0)

export interface Prepared {
  index: number
  start: number
  end: number
  body: Readable
  shard: ShardClient
  rest: ShardClient[]
}
