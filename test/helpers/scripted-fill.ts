import { createHash } from 'node:crypto'
import { blockCrcs, blockListDigest } from '../../lib/integrity/block-hasher.js'
import { Fill, type ChunkFetch } from '../../edge/fill/fill.js'
import type { BodyDest } from '../../lib/http/shard-read.js'
import type { ChunkRef } from '../../edge/title.js'

/**
 * The Fill against a scripted upstream: each fetch is a stream the test pushes
 * pieces into, so every interleaving is chosen by the test, not by timing.
 */
export class Pipe {
  private queue: (Buffer | Error | null)[] = []
  private wake: (() => void) | null = null
  destroyed = false
  constructor(readonly from: number, readonly to: number) {}
  push(x: Buffer | Error | null) { this.queue.push(x); this.wake?.() }
  destroy() { this.destroyed = true; this.wake?.() }
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        while (this.queue.length === 0 && !this.destroyed) await new Promise<void>(r => { this.wake = r })
        if (this.destroyed) return
        const x = this.queue.shift()!
        if (x === null) return
        if (x instanceof Error) throw x
        yield x
      }
    } finally { this.destroyed = true }
  }
}

export interface SetupOptions {
  splitBytes?: number
  maxSegments?: number
  retries?: number
  retryBackoffMs?: number
  corrupt?: boolean
  /** the manifest lists the chunk's blocks: the fill asks for the list (`list`) */
  blocks?: boolean
  /** the manifest's SHA-256 is another chunk's, its block list this one's: a CRC32C collision only the digest would catch */
  otherDigest?: boolean
  /** FillOptions.verifyWholeChunks (unset: on) */
  verifyWholeChunks?: boolean
}

export function setup(size: number, o: SetupOptions = {}) {
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + 3) & 0xff
  const sha = createHash('sha256').update(bytes).digest('hex')
  const crcs = blockCrcs(bytes)
  const sha256 = o.otherDigest ? createHash('sha256').update('another chunk').digest('hex') : sha
  const ref: ChunkRef = { key: `m/0/${sha}`, contentId: 'm', index: 0, sha256, size, blocks: o.blocks ? blockListDigest(crcs) : undefined }
  const pipes: Pipe[] = []
  /** the destination the fill gave each fetch (a zero-copy source would read into it) */
  const dests: (BodyDest | undefined)[] = []
  let onFetch: (() => void) | null = null
  const fetch: ChunkFetch = async (_ref, from, to, _signal, dest) => { const p = new Pipe(from, to); pipes.push(p); dests.push(dest); onFetch?.(); return p }
  const fetched = (n: number) => new Promise<void>(r => { if (pipes.length >= n) r(); else onFetch = () => { if (pipes.length >= n) r() } })
  /** the block list request: the test answers it with list.send() or list.refuse() */
  let answer!: { resolve: (b: Buffer) => void; reject: (e: Error) => void }
  const listed = new Promise<Buffer>((resolve, reject) => { answer = { resolve, reject } })
  let listAsked = 0
  const list = { asked: () => listAsked, send: () => answer.resolve(crcs), refuse: (e: Error) => answer.reject(e) }
  /** pushes bytes [from, to) of the source (or corrupted) into a pipe */
  const feed = (p: Pipe, from: number, to: number) => {
    const b = Buffer.from(bytes.subarray(from, to))
    if (o.corrupt) b[0]! ^= 1
    p.push(b)
  }
  let received = 0
  const retries: { reason: string; at: number }[] = []
  const opts = { splitBytes: o.splitBytes ?? 2 ** 30, maxSegments: o.maxSegments ?? 4, retries: o.retries ?? 0, retryBackoffMs: o.retryBackoffMs ?? 0,
    ...(o.verifyWholeChunks === undefined ? {} : { verifyWholeChunks: o.verifyWholeChunks }) }
  const upstream = { chunk: fetch, crcs: o.blocks ? async () => { listAsked++; return listed } : undefined }
  const fill = new Fill(ref, upstream, opts, { bytes: n => { received += n }, retry: (reason, _err, at) => { retries.push({ reason, at }) } })
  return { bytes, crcs, ref, pipes, dests, fetched, feed, fill, list, retries, received: () => received }
}

/** What undici throws when the upstream resets the connection mid-body. */
export function reset(): Error {
  return Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })
}

/** Lets queued I/O callbacks run until `cond` holds (bounded): a barrier on state, not on time. */
export async function ticksUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise(r => setImmediate(r))
}

export async function readAll(fill: Fill, from: number, to: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let pos = from
  while (pos < to) {
    await fill.waitFor(pos)
    const end = Math.min(fill.availableFrom(pos), to)
    parts.push(Buffer.from(fill.buf.subarray(pos, end)))
    pos = end
  }
  return Buffer.concat(parts)
}

/**
 * The split tests' start: the fill started at 0, its first `fed` bytes in,
 * then a reader at `seek` (to the end) that has its own second request.
 * Resolves with that reader's bytes to come.
 */
export async function startedWithSeek(s: ReturnType<typeof setup>, fed: number, seek: number): Promise<{ seek: Promise<Buffer> }> {
  s.fill.start(0)
  await s.fetched(1)
  s.feed(s.pipes[0]!, 0, fed)
  const reader = readAll(s.fill, seek, s.bytes.length)
  await s.fetched(2)
  return { seek: reader }
}
