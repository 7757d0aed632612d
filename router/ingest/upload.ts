import { createHash } from 'node:crypto'
import { BlockHasher, blockListDigest } from '../../lib/integrity/block-hasher.js'
import type { Lease } from './buffer-pool.js'
import type { Ingestor } from './ingest.js'
import type { ShardClient } from '../cluster/shard-client.js'

/**
 * One upload's chunking loop and its in-flight chunk writes: the body copied
 * into pool buffers of chunkSize bytes, each full buffer handed to a write on
 * its owners (Ingestor.storeChunk) while the next fills, at most `pipeline`
 * writes in flight. ingest.ts has the theory of operation, and the rule of
 * buffer ownership this file keeps.
 */
export class Upload {
  readonly replicas = { stored: 0, resumed: 0 }
  /** the chunk copies this upload created (not found there): what a refused upload deletes (Ingestor.upload) */
  readonly created: { index: number; shard: ShardClient }[] = []
  private readonly inflight = new Set<Promise<void>>()
  private failure: Error | undefined
  private readonly digests: string[] = []
  private readonly blocks: string[] = []

  /** `tooMany`: the error once a chunk past `maxChunks` starts (a manifest the shards would refuse: Ingestor.ingest) */
  constructor(private readonly ing: Ingestor, private readonly sid: string, private readonly mayExist: boolean,
    private readonly maxChunks = Infinity, private readonly tooMany: () => Error = () => new Error('too many chunks')) {}

  async run(body: AsyncIterable<Buffer>, signal?: AbortSignal): Promise<Counted> {
    const cs = this.ing.chunkSize
    const whole = createHash('sha256')
    let size = 0
    // the buffer being filled: owned here until handed to launch(), which then settles it whatever happens
    let lease: Lease | undefined
    let filled = 0
    let hash: BlockHasher | undefined
    try {
      for await (const piece of body) {
        let off = 0
        while (off < piece.length) {
          if (this.failure) throw this.failure
          if (!lease) {
            if (this.digests.length >= this.maxChunks) throw this.tooMany()
            lease = await this.ing.acquire(signal)
            hash = new BlockHasher()
          }
          const n = Math.min(piece.length - off, cs - filled)
          const part = piece.subarray(off, off + n)
          part.copy(lease.buf, filled)
          hash!.update(part)
          whole.update(part)
          filled += n
          off += n
          if (filled === cs) {
            const full = lease
            lease = undefined
            filled = 0
            await this.launch(full, cs, hash!)
          }
        }
        size += piece.length
        this.ing.countBytes(piece.length)
      }
      if (lease) {
        const last = lease
        lease = undefined
        await this.launch(last, filled, hash!)
      }
      await Promise.all(this.inflight)
      if (this.failure) throw this.failure
    } finally {
      // only ever filled here: no socket has seen it
      lease?.release()
      await Promise.allSettled(this.inflight)
    }
    return { size, sha256: whole.digest('hex'), chunks: this.digests, blocks: this.blocks }
  }

  /**
   * Starts writing a full buffer; waits first if this upload has `pipeline`
   * writes in flight. Takes the lease over: settles it once the write is done,
   * or at once if the upload has failed meanwhile.
   */
  private async launch(lease: Lease, len: number, hash: BlockHasher): Promise<void> {
    while (this.inflight.size >= this.ing.pipeline) await Promise.race(this.inflight)
    if (this.failure) {
      lease.release()
      throw this.failure
    }
    const index = this.digests.length
    const { sha256, crcs } = hash.finish()
    this.digests.push(sha256)
    this.blocks.push(blockListDigest(crcs))
    const use = { mayBeRead: false }
    const p: Promise<void> = this.ing.storeChunk(this.sid, index, sha256, lease.buf.subarray(0, len), this.mayExist, this.replicas, use, this.created)
      .catch(err => { this.failure ??= err as Error })
      .finally(() => {
        this.inflight.delete(p)
        this.ing.settle(lease, use.mayBeRead)
      })
    this.inflight.add(p)
  }
}

export interface Counted {
  size: number
  sha256: string
  /** per chunk: its SHA-256, and the SHA-256 of its block CRC list */
  chunks: string[]
  blocks: string[]
}
