import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import type { ChunkSet } from './data.js'

/**
 * A title too large to hold in the bench's memory (the router row ingests
 * 2 GiB): 1 MiB blocks of one random seed, each stamped with its block number
 * in its first 4 bytes, so every chunk differs and any byte range can be
 * generated again to check what a server sends. The seed is random, so
 * nothing downstream can compress or deduplicate it away.
 */
const BLOCK = 1024 * 1024

export class TitleData {
  readonly seed = randomBytes(BLOCK)
  readonly sha256: string
  /** SHA-256 of each chunk, hex */
  readonly chunkSha256: string[] = []

  constructor(readonly contentId: string, readonly size: number, readonly chunkSize: number) {
    if (size % BLOCK !== 0 || chunkSize % BLOCK !== 0) throw new Error(`title size (${size}) and chunk size (${chunkSize}) must be multiples of 1 MiB`)
    const whole = createHash('sha256')
    let chunk = createHash('sha256')
    for (let b = 0; b < size / BLOCK; b++) {
      const block = this.block(b)
      whole.update(block)
      chunk.update(block)
      if (((b + 1) * BLOCK) % chunkSize === 0 || (b + 1) * BLOCK === size) {
        this.chunkSha256.push(chunk.digest('hex'))
        chunk = createHash('sha256')
      }
    }
    this.sha256 = whole.digest('hex')
  }

  get chunks(): number {
    return this.chunkSha256.length
  }

  block(b: number): Buffer {
    const out = Buffer.from(this.seed)
    out.writeUInt32BE(b, 0)
    return out
  }

  /** bytes [start, end] of the title (inclusive, as in a Range header) */
  bytes(start: number, end: number): Buffer {
    const parts: Buffer[] = []
    for (let b = Math.floor(start / BLOCK); b <= Math.floor(end / BLOCK); b++) {
      const from = Math.max(start, b * BLOCK) - b * BLOCK
      const to = Math.min(end, b * BLOCK + BLOCK - 1) - b * BLOCK
      parts.push(this.block(b).subarray(from, to + 1))
    }
    return Buffer.concat(parts)
  }

  /** the body as a stream of fresh 1 MiB Buffers (the router may hold them until its shards have them) */
  stream(): Readable {
    const self = this
    return Readable.from((function* () { for (let b = 0; b < self.size / BLOCK; b++) yield self.block(b) })(), { objectMode: false })
  }

  /** The first `count` chunks as the origin row's ChunkSet, for checkServer and wrk's chunk URLs. */
  chunkSet(count: number): ChunkSet {
    return { contentId: this.contentId, count, size: this.chunkSize, sha256: this.chunkSha256.slice(0, count), sample: this.bytes(0, this.chunkSize - 1) }
  }
}

/** PUT /v1/content/{id} through the router, with the body's Content-Digest; resolves when the title is published. */
export async function ingestTitle(routerUrl: string, token: string, t: TitleData): Promise<{ version: string }> {
  const res = await request(`${routerUrl}/v1/content/${t.contentId}`, {
    method: 'PUT', body: t.stream(),
    headers: {
      authorization: `Bearer ${token}`, 'content-length': String(t.size), 'content-type': 'video/mp4',
      'content-digest': `sha-256=:${Buffer.from(t.sha256, 'hex').toString('base64')}:`,
      'reelcdn-meta': JSON.stringify({ title: `bench ${t.contentId}` }),
    },
    headersTimeout: 0, bodyTimeout: 0,
  })
  const text = await res.body.text()
  if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`ingest of ${t.contentId}: ${res.statusCode} ${text}`)
  const meta = await request(`${routerUrl}/v1/content/${t.contentId}/meta`)
  const m = await meta.body.json() as { version?: string }
  if (meta.statusCode !== 200 || typeof m.version !== 'string') throw new Error(`meta of ${t.contentId}: ${meta.statusCode} ${JSON.stringify(m)}`)
  return { version: m.version }
}

/**
 * Checks a server that serves the title at one URL (router, edge, nginx in
 * front of them): a range across a chunk boundary is byte-exact, and each of
 * the first `count` chunks, asked for as its aligned range, has the right
 * SHA-256. Reading every chunk once is also what warms a cache.
 */
export async function checkTitle(name: string, url: string, t: TitleData, count: number, headers: Record<string, string> = {}): Promise<void> {
  const start = t.chunkSize - 12345
  const end = Math.min(start + BLOCK, t.size - 1)
  const r = await request(url, { headers: { ...headers, range: `bytes=${start}-${end}` } })
  const got = Buffer.from(await r.body.arrayBuffer())
  if (r.statusCode !== 206 || !got.equals(t.bytes(start, end)))
    throw new Error(`${name} answered bytes=${start}-${end} with ${r.statusCode} and ${got.length} bytes that do not match the source`)
  for (let i = 0; i < count; i++) {
    const w = await request(url, { headers: { ...headers, range: `bytes=${i * t.chunkSize}-${(i + 1) * t.chunkSize - 1}` } })
    const h = createHash('sha256')
    for await (const piece of w.body) h.update(piece as Buffer)
    const hex = h.digest('hex')
    if (w.statusCode !== 206 || hex !== t.chunkSha256[i]) throw new Error(`${name} answered chunk ${i} with ${w.statusCode} and sha256 ${hex}, want ${t.chunkSha256[i]}`)
  }
}
