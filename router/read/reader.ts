import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { createHash, type Hash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { BLOCK_SIZE, blockListDigest } from '../../lib/integrity/block-hasher.js'
import { BlockRun } from '../../lib/integrity/block-run.js'
import type { Logger } from '../../lib/logger.js'
import type { RouterMetrics } from '../../lib/metrics.js'
import { ClientClosedError, toCdnError, UpstreamError } from '../../lib/errors.js'
import { chunkLength } from '../../lib/manifest.js'
import { drained } from '../../lib/representation.js'
import { clientGone } from '../../lib/http/client-gone.js'
import { chunkName } from '../../lib/ids.js'
import { chunkKey } from '../cluster/keys.js'
import type { StoredFile } from '../cluster/files.js'
import { NoReplicaError, ShardRefusedError } from '../errors.js'
import type { Cluster } from '../cluster/cluster.js'
import { translate, type ShardClient } from '../cluster/shard-client.js'
import { RelaySlabs, WindowedRead, type RelayBody } from './shard-windows.js'

/**
 * read(K, offset): streams byte ranges of a file of a title (its own bytes, or
 * one rendition of an adaptive title: router/cluster/files.ts) to a client,
 * chunk by chunk, failing over between copies without the client noticing.
 *
 * Theory of operation. For chunk i, the shards are tried in the cluster's read
 * order (least-loaded healthy owner first). Each attempt asks for the blocks
 * that hold the bytes from the position already reached to the end of the
 * wanted range, with If-Match on the manifest's chunk digest. If the attempt
 * cannot start (down, timeout, 5xx, 404, 412), its body breaks off (reset,
 * body timeout, short body) or a block fails verification, the next shard is
 * asked for the rest. A failover costs one request, never a re-send: the
 * client only ever receives bytes that were verified, in order.
 *
 * Verification, block by block. The manifest carries, per chunk, the SHA-256
 * of the chunk's block list (a CRC32C per 64 KiB block, what shards keep).
 * Before a chunk's first byte the router fetches that list from an owner and
 * checks it against the manifest (a wrong list from one owner: the next is
 * asked); lists are cached by their digest. Each block of a shard's answer is
 * then held until it is complete (64 KiB at most), its CRC32C checked, and
 * only then forwarded. A block that fails — a lying or broken shard, bytes
 * hurt on the wire, a bug — is never sent: the read moves to the next owner
 * at that block's first byte. So a partial range is verified without hashing
 * or holding back the whole 64 MiB chunk. CRC32C catches corruption, not a
 * forger who controls a shard; shards are inside the operator's trust
 * boundary (docs/security.md). Titles ingested before manifests carried block
 * lists are read as before: forwarded as they arrive, each shard having
 * checked its own CRCs before sending.
 *
 * End-to-end check: when a response carries a whole chunk (edge fills via
 * /chunks/i, full-title reads) whose blocks are not checked (a title ingested
 * before manifests carried block lists, or router.verifyBlocks off), its bytes
 * are hashed as they pass, and the last piece is held back until the digest at
 * the chunk's end matches the manifest's; what was forwarded cannot be
 * recalled, so a mismatch cuts the response short of its Content-Length — the
 * client sees a failed read, never a complete wrong chunk — and it is counted
 * and logged with the shards that served it. When every block is checked
 * against a list the manifest's SHA-256 anchors, the hash would only catch a
 * CRC32C collision on a block that was hurt after its shard's own check (about
 * 2^-32 of such rare blocks), at 0.6 s of CPU per GB, most of what the relay
 * of a whole chunk costs: so it runs then only with router.verifyWholeChunks
 * (off by default). Edges make the same choice for their fills
 * (edge.fill.verifyWholeChunks, edge/fill/fill.ts).
 */
export class ChunkReader {
  private readonly lists = new LRUCache<string, Buffer>({ max: 4096 })
  private readonly listing = new Map<string, Promise<Buffer>>()
  /** the memory checked blocks are read into from http: shards (shard-windows.ts) */
  readonly slabs: RelaySlabs

  constructor(
    private readonly cluster: Cluster,
    private readonly metrics: RouterMetrics,
    private readonly logger: Logger,
    private readonly verifyWholeChunks: boolean,
    private readonly verifyBlocks = true,
    /** router.relayMemoryBytes, and how long a read waits for it (router.upstream.headersTimeoutMs) */
    relay: { memoryBytes: number; waitMs: number } = { memoryBytes: 256 * 1024 ** 2, waitMs: 10_000 },
  ) {
    this.slabs = new RelaySlabs(relay.memoryBytes, relay.waitMs)
  }

  /**
   * Opens the first bytes of [start, end] of chunk `index` (and fetches its
   * block list) before any header is sent, so that a title with no reachable
   * copy is a 503, not a cut body. A client that leaves meanwhile (`res`
   * closes) ends it at once, as a ClientClosedError, not a failover.
   */
  async prepare(f: StoredFile, index: number, start: number, end: number, res?: ServerResponse): Promise<Prepared> {
    const sid = f.sid
    const order = this.cluster.readOrder(chunkKey(sid, index))
    const crcs = await this.blockList(f, index, order)
    let lastErr: Error | undefined
    for (let i = 0; i < order.length; i++) {
      try {
        const body = await this.open(order[i]!, f, index, start, end, crcs, res)
        return { index, start, end, body, shard: order[i]!, rest: order.slice(i + 1), crcs }
      } catch (err) {
        if (res !== undefined && clientGone(res)) throw new ClientClosedError()
        lastErr = err as Error
        this.failover(err, order[i]!, sid, index)
      }
    }
    throw new NoReplicaError(`chunk ${chunkName(f.name, index)}`, { cause: lastErr })
  }

  /** Writes bytes [start, end] (inclusive) of the file to `res`, crossing chunk boundaries. */
  async writeRange(f: StoredFile, start: number, end: number, res: ServerResponse, first?: Prepared): Promise<void> {
    const cs = f.chunkSize
    for (let i = Math.floor(start / cs); i <= Math.floor(end / cs); i++) {
      const base = i * cs
      const from = Math.max(start, base) - base
      const to = Math.min(end, base + chunkLength(f, i) - 1) - base
      const pre = first && first.index === i && first.start === from && first.end === to ? first : undefined
      await this.writeChunk(f, i, from, to, res, pre)
    }
  }

  /** Writes bytes [from, to] of chunk `index`, verified, failing over between shards. */
  async writeChunk(f: StoredFile, index: number, from: number, to: number, res: ServerResponse, pre?: Prepared): Promise<void> {
    const sid = f.sid
    const sha = f.chunks[index]!
    const len = chunkLength(f, index)
    const served: string[] = []
    let held: Buffer | undefined
    /** the attempt's bytes are views of a slab (shard-windows.ts) */
    let fromSlabs = false
    let pos = from
    let lastErr: Error | undefined
    const order = pre ? [pre.shard, ...pre.rest] : this.cluster.readOrder(chunkKey(sid, index))
    const crcs = pre ? pre.crcs : await this.blockList(f, index, order)
    // a whole chunk is hashed when its blocks are not checked, or when the operator asks for both
    const whole = from === 0 && to === len - 1 && (!crcs || this.verifyWholeChunks)
    const hash: Hash | undefined = whole ? createHash('sha256') : undefined
    /** Hands bytes to the client; false when its socket wants a drain before more. */
    const send = (out: Buffer): boolean => {
      if (hash) {
        hash.update(out)
        // hold back the latest piece: the chunk's last bytes go out only once its digest checks
        // (a copy of it when it is a view of a slab: the slab may be reused before the piece is written)
        const prev = held
        held = fromSlabs ? Buffer.from(out) : out
        if (!prev) return true
        out = prev
      }
      if (!fromSlabs) return res.write(out)
      let written!: () => void
      lastWrites.set(res, new Promise<void>(r => { written = r }))
      return res.write(out, () => written())
    }
    for (let i = 0; i < order.length && pos <= to; i++) {
      const shard = order[i]!
      let body: RelayBody
      if (pre && i === 0) body = pre.body
      else {
        try {
          body = await this.open(shard, f, index, pos, to, crcs, res)
        } catch (err) {
          if (clientGone(res)) throw new ClientClosedError()
          lastErr = err as Error
          this.failover(err, shard, sid, index)
          continue
        }
      }
      served.push(shard.id)
      fromSlabs = body instanceof WindowedRead
      // or the client's connection closed: a write made after its socket died gets no callback, and nothing reads the slab then
      if (fromSlabs) (body as WindowedRead).written = () => Promise.race([lastWrites.get(res) ?? Promise.resolve(), closedOf(res)])
      const began = pos
      const check = crcs ? new BlockRun(crcs, len, pos - (pos % BLOCK_SIZE)) : undefined
      try {
        for await (const buf of body as AsyncIterable<Buffer>) {
          let more = true
          if (!check) {
            pos += buf.length
            more = send(buf)
          } else {
            let at = check.at
            for (const run of check.push(buf)) {
              // a run is verified bytes from chunk offset `at`: forward its part inside [pos, to]
              const s = Math.max(pos, at) - at
              const e = Math.min(to + 1, at + run.length) - at
              at += run.length
              if (e > s) {
                pos += e - s
                more = send(run.subarray(s, e)) && more
              }
            }
          }
          // one wait per piece from the shard, however many views of it went out
          if (!more) await drained(res).catch(() => { throw new ClientClosedError() })
          if (check && check.bad >= 0) throw new BadBlockError(shard.id, chunkName(sid, index), check.bad)
        }
      } catch (err) {
        body.destroy()
        this.metrics.bytesServed.inc(pos - began)
        if (err instanceof ClientClosedError || res.destroyed) throw new ClientClosedError()
        if (err instanceof BadBlockError) {
          this.metrics.blockMismatches.inc({ shard: shard.id, what: 'block' })
          this.logger.warn({ shard: shard.id, chunk: chunkName(sid, index), block: err.block }, 'block failed its CRC against the manifest; reading the rest from the next owner')
        }
        // a body that breaks off (reset, silence past bodyTimeoutMs) comes as undici's error: named like the rest
        lastErr = translate(shard.id, 'get_chunk', err)
        this.failover(lastErr, shard, sid, index)
        continue
      }
      this.metrics.bytesServed.inc(pos - began)
      if (pos <= to && clientGone(res)) throw new ClientClosedError()
      if (pos <= to) {
        lastErr = new UpstreamError(`shard ${shard.id} ended chunk ${chunkName(sid, index)} at byte ${pos} of ${to + 1}`)
        this.failover(lastErr)
      } else if (this.cluster.refused.size > 0) this.cluster.refused.forget(shard.id, chunkKey(sid, index)) // refused before, good now
    }
    if (pos <= to) throw new NoReplicaError(`chunk ${chunkName(sid, index)} from byte ${pos}`, { cause: lastErr })
    if (hash && hash.digest('hex') !== sha) {
      this.metrics.digestMismatches.inc()
      this.logger.error({ chunk: chunkName(sid, index), shards: served }, 'chunk bytes do not match the manifest digest; response cut')
      throw new UpstreamError(`chunk ${chunkName(sid, index)} failed end-to-end verification (served by ${served.join(', ')})`)
    }
    if (held && !res.write(held)) await drained(res).catch(() => { throw new ClientClosedError() })
  }

  /**
   * Asks a shard for bytes [pos, to] of a chunk, widened to whole blocks when
   * they are to be verified; those come window by window into the relay's
   * slabs from an http: shard (shard-windows.ts), through undici otherwise.
   * A read ends when `res` closes, wherever it waits: a windowed one for
   * relay memory, a turn on the shard's connections, a head (its
   * `destroy`); one through undici (no block list to check, or an https:
   * shard) in the client's queue for a connection, or for its head or body
   * (an AbortSignal: the slow path can afford one). Without that, a read
   * whose client left kept its place in line and, once served, still asked
   * its shard for its bytes.
   */
  private open(shard: ShardClient, f: StoredFile, index: number, pos: number, to: number, crcs: Buffer | undefined,
    res: ServerResponse | undefined): Promise<RelayBody> {
    if (!crcs) return abortsWith(res, signal => shard.openChunk(f.sid, index, f.chunks[index]!, pos, to, signal))
    const end = Math.min(chunkLength(f, index), Math.ceil((to + 1) / BLOCK_SIZE) * BLOCK_SIZE) - 1
    const start = pos - (pos % BLOCK_SIZE)
    if (shard.reads) return endsWith(res, new WindowedRead(shard, f.sid, index, f.chunks[index]!, start, end, this.slabs.for(end - start + 1))).open()
    return abortsWith(res, signal => shard.openChunk(f.sid, index, f.chunks[index]!, start, end, signal))
  }

  /**
   * The chunk's block CRCs, checked against the manifest, from the cache or
   * the first owner that has a matching list; undefined when the manifest
   * has no block lists (or verification is off). Concurrent readers of one
   * chunk share one fetch.
   */
  private async blockList(f: StoredFile, index: number, order: ShardClient[]): Promise<Buffer | undefined> {
    const want = f.blocks?.[index]
    if (!this.verifyBlocks || want === undefined) return undefined
    return this.checkedList(f, index, want, order)
  }

  /**
   * The chunk's block CRCs checked against the manifest, as edges fetch them
   * to verify their fills block by block (GET /v1/content/{id}/chunks/{i}/crcs);
   * undefined when the manifest has no block lists. Whatever router.verifyBlocks
   * says: the edge asks for a list to check its own bytes with.
   */
  async verifiedBlockList(f: StoredFile, index: number): Promise<Buffer | undefined> {
    const want = f.blocks?.[index]
    if (want === undefined) return undefined
    return this.checkedList(f, index, want, this.cluster.readOrder(chunkKey(f.sid, index)))
  }

  private async checkedList(f: StoredFile, index: number, want: string, order: ShardClient[]): Promise<Buffer> {
    const have = this.lists.get(want)
    if (have) return have
    // one fetch per chunk in flight; keyed by chunk too, as two titles with the same bytes share the digest, not the owners
    const key = `${f.sid}/${index}`
    let p = this.listing.get(key)
    if (!p) {
      p = this.fetchBlockList(f, index, want, order).finally(() => this.listing.delete(key))
      this.listing.set(key, p)
    }
    return p
  }

  private async fetchBlockList(f: StoredFile, index: number, want: string, order: ShardClient[]): Promise<Buffer> {
    const sid = f.sid
    const bytes = 4 * Math.ceil(chunkLength(f, index) / BLOCK_SIZE)
    let lastErr: Error | undefined
    for (const shard of order) {
      try {
        const crcs = await shard.chunkCrcs(sid, index, bytes)
        if (blockListDigest(crcs) === want) {
          this.lists.set(want, crcs)
          return crcs
        }
        this.metrics.blockMismatches.inc({ shard: shard.id, what: 'block_list' })
        this.logger.warn({ shard: shard.id, chunk: chunkName(sid, index) }, 'block list does not match the manifest; asking the next owner')
        lastErr = new UpstreamError(`shard ${shard.id} sent a block list for chunk ${chunkName(sid, index)} that does not match the manifest`)
        this.cluster.refused.note(shard.id, chunkKey(sid, index))
      } catch (err) {
        lastErr = err as Error
      }
      this.failover(lastErr, shard, sid, index)
    }
    throw new NoReplicaError(`block list of chunk ${chunkName(sid, index)}`, { cause: lastErr })
  }

  /**
   * Counts a move to the next copy; a copy its shard says is unusable (corrupt,
   * missing, other bytes) or whose bytes failed our check is remembered, so
   * reads ask it last until it is stored again (cluster/refused-copies.ts).
   */
  private failover(err: unknown, shard?: ShardClient, sid?: string, index?: number): void {
    if (shard && sid !== undefined && index !== undefined && copyIsBad(err)) this.cluster.refused.note(shard.id, chunkKey(sid, index))
    const e = toCdnError(err)
    const reason = err instanceof BadBlockError ? 'corrupt'
      : e.code === 'CDN_ERR_UPSTREAM_TIMEOUT' ? 'timeout'
      : e.code === 'CDN_ERR_UPSTREAM' ? 'transport'
        : e.code === 'CDN_ERR_SHARD_REFUSED' ? 'refused' : 'other'
    this.metrics.failovers.inc({ reason })
  }
}

/**
 * Per response, the callback of the relay's latest write to it (writes
 * complete in order): a slab is reused only once what was sent from it is
 * written out, and a window is asked for ahead only once the one before it
 * is (shard-windows.ts). Per response, not per chunk: the next chunk's first
 * window ahead also waits for the last views of the chunk before it, so a
 * response holds two slabs past a chunk boundary too (a third for a moment as
 * the chunk's first window is asked for).
 */
const lastWrites = new WeakMap<ServerResponse, Promise<void>>()

const closed = new WeakMap<ServerResponse, Promise<void>>()

/** Resolves once `res` closed (finished, or its connection gone): one listener per response, however many chunks it carries. */
function closedOf(res: ServerResponse): Promise<void> {
  let p = closed.get(res)
  if (!p) {
    p = res.closed ? Promise.resolve() : new Promise<void>(r => res.once('close', () => r()))
    closed.set(res, p)
  }
  return p
}

/** `w`, destroyed when `res` closes (a no-op for a read that ended first): on the response's one close listener (closedOf). */
function endsWith(res: ServerResponse | undefined, w: WindowedRead): WindowedRead {
  if (res !== undefined) void closedOf(res).then(() => w.destroy())
  return w
}

/**
 * `open(signal)`, the signal aborted when its client leaves (on the
 * response's one close listener, closedOf). undici keeps an aborted request
 * in its queue until a connection is free (it is then dropped unsent), so
 * the wait here ends when the client leaves, not then; a body that comes
 * anyway is destroyed.
 */
async function abortsWith(res: ServerResponse | undefined, open: (signal?: AbortSignal) => Promise<Readable>): Promise<Readable> {
  if (res === undefined) return open()
  const ac = new AbortController()
  const left = new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason as Error), { once: true }))
  left.catch(() => {})
  void closedOf(res).then(() => { if (clientGone(res)) ac.abort(new ClientClosedError()) })
  const opened = open(ac.signal)
  try {
    return await Promise.race([opened, left])
  } catch (err) {
    opened.then(b => b.destroy(), () => {})
    throw err
  }
}

function copyIsBad(err: unknown): boolean {
  if (err instanceof BadBlockError) return true
  return err instanceof ShardRefusedError && (err.upstreamCode === 'CDN_ERR_CORRUPT' || err.upstreamStatus === 404 || err.upstreamStatus === 412)
}

class BadBlockError extends UpstreamError {
  override name = 'BadBlockError'
  constructor(shard: string, chunk: string, readonly block: number) {
    super(`shard ${shard} sent block ${block} of chunk ${chunk} with a CRC32C that does not match the manifest's block list`)
  }
}

export interface Prepared {
  index: number
  start: number
  end: number
  body: RelayBody
  shard: ShardClient
  rest: ShardClient[]
  /** the chunk's verified block list, when the manifest has one */
  crcs: Buffer | undefined
}
