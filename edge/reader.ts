import type { ServerResponse } from 'node:http'
import type { EdgeMetrics } from '../lib/metrics.js'
import type { ChunkCache } from './cache.js'
import type { Coalescer } from './coalesce.js'
import type { DiskRow } from './disk-index.js'
import type { ReadHandle } from './disk-handles.js'
import type { Fill } from './fill.js'
import type { Send } from './send.js'
import { chunkRef, type ChunkRef, type Title } from './title.js'

/**
 * Serving bytes of a title to a player, chunk by chunk, from wherever each
 * chunk is: RAM (one write of a subarray of the cached Buffer), disk (verified
 * pieces from the file) or a fill (bytes as they arrive). Every chunk read
 * also asks for readahead of the next `readahead` chunks.
 *
 * `open` runs before the response's headers for the first chunk, so every
 * failure it can meet (upstream down, timeout, corrupt upstream bytes before
 * the first one arrives) is still a clean JSON 502/504; for a miss it returns
 * once the first requested byte has arrived. After the headers, a failure can
 * only cut the response, which HttpService does.
 */
export type Result = 'ram_hit' | 'disk_hit' | 'miss' | 'coalesced'

export interface Source {
  index: number
  result: Result
  buf: Buffer | undefined
  row: DiskRow | undefined
  handle: ReadHandle | undefined
  fill: Fill | undefined
}

/**
 * Optional observers of player reads, given the request's session (edge/session-id.ts):
 * `position` before each chunk is read (session-aware retention), `read` after
 * its bytes went out (the request log).
 */
export interface ReadHooks {
  position?(session: string, contentId: string, index: number): void
  read?(ref: ChunkRef, result: Result, bytes: number, session: string): void
}

export class TitleReader {
  constructor(
    private readonly cache: ChunkCache,
    private readonly fills: Coalescer,
    private readonly metrics: EdgeMetrics,
    private readonly send: Send,
    private readonly readahead: number,
    readonly hooks: ReadHooks = {},
  ) {}

  /** Where chunk `index` comes from, ready to send byte `offset` of it. */
  async open(title: Title, index: number, offset: number): Promise<Source> {
    const ref = chunkRef(title, index)
    for (;;) {
      const buf = this.cache.ram.get(ref.key)
      if (buf !== undefined) {
        this.readAhead(title, index)
        this.metrics.reads.inc({ result: 'ram_hit' })
        return { index, result: 'ram_hit', buf, row: undefined, handle: undefined, fill: undefined }
      }
      const row = this.cache.disk.get(ref.key)
      if (row !== undefined) {
        this.readAhead(title, index)
        const handle = await this.cache.disk.openRead(row)
        if (handle !== undefined) {
          this.cache.promote(row)
          this.metrics.reads.inc({ result: 'disk_hit' })
          return { index, result: 'disk_hit', buf: undefined, row, handle, fill: undefined }
        }
      }
      const got = this.fills.join(ref, offset)
      if (got === undefined) continue // cached while we looked on disk
      // the demand fill first, so readahead never takes the slot it needs
      this.readAhead(title, index)
      const result = got.joined ? 'coalesced' : 'miss'
      this.metrics.reads.inc({ result })
      await got.fill.waitFor(offset)
      return { index, result, buf: undefined, row: undefined, handle: undefined, fill: got.fill }
    }
  }

  private readAhead(title: Title, index: number): void {
    const last = Math.min(index + this.readahead, title.manifest.chunks.length - 1)
    for (let j = index + 1; j <= last; j++) this.metrics.readahead.inc({ result: this.fills.prefetch(chunkRef(title, j)) })
  }

  /** Closes what an unused source holds. */
  release(src: Source | undefined): void {
    if (src?.handle) this.cache.disk.release(src.handle)
  }

  /**
   * Writes bytes [start, end] (inclusive) of the title. `first` is the source
   * opened before the headers, used if it is the chunk `start` falls in.
   */
  async writeRange(title: Title, start: number, end: number, res: ServerResponse, first: { src: Source | undefined }, session?: string): Promise<void> {
    const cs = title.manifest.chunkSize
    const { position, read } = this.hooks
    for (let i = Math.floor(start / cs); i <= Math.floor(end / cs); i++) {
      const base = i * cs
      const from = Math.max(start, base) - base
      const to = Math.min(end, base + cs - 1) - base
      if (session !== undefined) position?.(session, title.manifest.contentId, i)
      let src = first.src
      if (src !== undefined && src.index === i) first.src = undefined
      else src = await this.open(title, i, from)
      await this.write(src, from, to, res)
      if (session !== undefined) read?.(chunkRef(title, i), src.result, to - from + 1, session)
    }
  }

  private async write(src: Source, from: number, to: number, res: ServerResponse): Promise<void> {
    try {
      if (src.buf !== undefined) await this.send(res, src.buf.subarray(from, to + 1))
      else if (src.handle !== undefined) await this.cache.disk.writeRange(src.row!, src.handle, from, to, res, this.send)
      else await this.fromFill(src.fill!, from, to, res)
    } finally {
      this.release(src)
    }
    this.metrics.bytes.inc({ result: src.result }, to - from + 1)
  }

  private async fromFill(fill: Fill, from: number, to: number, res: ServerResponse): Promise<void> {
    let pos = from
    while (pos <= to) {
      await fill.waitFor(pos)
      const avail = Math.min(fill.availableFrom(pos), to + 1)
      await this.send(res, fill.buf.subarray(pos, avail))
      pos = avail
    }
  }
}
