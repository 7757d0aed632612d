import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../lib/logger.js'
import type { OriginMetrics } from '../lib/metrics.js'
import { chunkName } from '../lib/ids.js'
import type { ChunkIndex, ChunkRow } from './chunk-index.js'
import type { ChunkStore } from './chunk-store.js'
import { BlockHasher } from '../lib/integrity/block-hasher.js'

/**
 * The background scrubber: walks every chunk in key order and re-verifies its
 * whole SHA-256 and block CRCs from disk, at no more than `rateMBps`, so
 * bit rot is found before a reader hits it. A corrupt chunk is marked (the
 * inventory shows it, the router replaces it); a verified one gets a fresh
 * `verifiedAt`. After a full pass it rests `idleMs`, then starts again.
 * It owns nothing but its cursor; the index and store are shared with serving.
 */
export interface ScrubberOptions {
  rateMBps: number
  idleMs: number
  pieceBytes: number
}

export class Scrubber {
  private readonly ac = new AbortController()
  private done: Promise<void> | undefined
  passes = 0

  constructor(
    private readonly index: ChunkIndex,
    private readonly store: ChunkStore,
    private readonly metrics: OriginMetrics,
    private readonly logger: Logger,
    private readonly opts: ScrubberOptions,
    private readonly onCorrupt: (row: ChunkRow, err: Error) => void,
  ) {}

  start(): void {
    if (this.opts.rateMBps <= 0 || this.done) return
    this.done = this.loop().catch(err => {
      if (!this.ac.signal.aborted) this.logger.error({ err }, 'scrubber stopped')
    })
  }

  async stop(): Promise<void> {
    this.ac.abort()
    await this.done
  }

  private async loop(): Promise<void> {
    const signal = this.ac.signal
    while (!signal.aborted) {
      await this.pass(signal)
      this.passes++
      this.metrics.scrubPasses.inc()
      await sleep(this.opts.idleMs, undefined, { signal })
    }
  }

  /** One pass over every chunk; returns the corrupt ones found. */
  async pass(signal: AbortSignal): Promise<string[]> {
    const found: string[] = []
    const bytesPerMs = (this.opts.rateMBps * 1e6) / 1000
    const t0 = Date.now()
    let bytes = 0
    let afterId = ''
    let afterIndex = -1
    for (;;) {
      const rows = this.index.page(afterId, afterIndex, 100)
      if (rows.length === 0) return found
      for (const row of rows) {
        if (signal.aborted) return found
        if (row.state !== 'ok') continue
        const err = await this.verify(row, signal, async n => {
          bytes += n
          this.metrics.scrubbedBytes.inc(n)
          const ahead = bytes / bytesPerMs - (Date.now() - t0)
          if (ahead > 0) await sleep(ahead, undefined, { signal })
        })
        // the chunk may have been deleted or replaced while we read it
        const now = this.index.get(row.contentId, row.index)
        if (!now || now.sha256 !== row.sha256) continue
        if (err) {
          found.push(chunkName(row.contentId, row.index))
          this.onCorrupt(row, err)
        } else this.index.markVerified(row.contentId, row.index, Date.now())
      }
      const last = rows[rows.length - 1]!
      afterId = last.contentId
      afterIndex = last.index
    }
  }

  private async verify(row: ChunkRow, signal: AbortSignal, pace: (n: number) => Promise<void>): Promise<Error | undefined> {
    let fh
    try {
      fh = await this.store.openChunk(row)
    } catch (err) {
      return err as Error
    }
    try {
      const hasher = new BlockHasher()
      const buf = Buffer.allocUnsafe(this.opts.pieceBytes)
      for (let off = 0; off < row.size && !signal.aborted;) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, row.size - off), off)
        if (bytesRead === 0) return new Error(`file ends at ${off} of ${row.size} bytes`)
        hasher.update(buf.subarray(0, bytesRead))
        off += bytesRead
        await pace(bytesRead)
      }
      if (signal.aborted) return undefined
      const got = hasher.finish()
      if (got.sha256 !== row.sha256) return new Error(`sha256 is ${got.sha256}, expected ${row.sha256}`)
      if (!got.crcs.equals(row.crcs)) return new Error('block CRCs differ from the index')
      return undefined
    } catch (err) {
      if (signal.aborted) return undefined
      return err as Error
    } finally {
      await fh.close().catch(() => {})
    }
  }
}
