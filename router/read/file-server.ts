import type { IncomingMessage, ServerResponse } from 'node:http'
import { NotFoundError } from '../../lib/errors.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { BLOCK_SIZE } from '../../lib/integrity/block-hasher.js'
import { chunkLength } from '../../lib/manifest.js'
import { planResponse, sendPlanned } from '../../lib/representation.js'
import { etagOf } from '../cluster/keys.js'
import type { StoredFile } from '../cluster/files.js'
import type { ChunkReader, Prepared } from './reader.js'

/**
 * Answers reads of one file of a title (router/cluster/files.ts): a
 * single-file title's bytes or one rendition of an adaptive title, the same
 * way. Each answer speaks the RFC 9110 contract every service shares
 * (lib/representation.ts: conditionals, ranges, multipart): the whole file,
 * one of its chunks (what edges fill from), or a chunk's block list (what
 * they verify fills with). The file's ETag is its SHA-256, a chunk's is the
 * chunk's.
 *
 * The first chunk's stream is opened before the status is chosen, so a file
 * with no reachable copy is a 503, not a 200 with a cut body; after the
 * headers the reader only logs and cuts (router/read/reader.ts).
 */
export interface FileMeta {
  contentType: string
  /** epoch ms: the title's publication */
  lastModified: number
}

export class FileServer {
  constructor(private readonly reader: ChunkReader, private readonly maxRanges: number) {}

  async file(req: IncomingMessage, res: ServerResponse, f: StoredFile, meta: FileMeta): Promise<void> {
    const plan = planResponse(req, {
      size: f.size, etag: etagOf(f.sha256), lastModified: meta.lastModified, contentType: meta.contentType,
      extra: { 'repr-digest': digestHeader(f.sha256), 'reelcdn-version': f.version },
    }, this.maxRanges)
    const r = plan.ranges?.[0] ?? { start: 0, end: f.size - 1 }
    const first = await this.prepare(req, res, plan.status, plan.length, f, r.start, r.end)
    try {
      await sendPlanned(res, plan, f.size, (s, e, out) => this.reader.writeRange(f, s, e, out, first))
    } finally {
      first?.body.destroy()
    }
  }

  /** Opens the first chunk's stream before the status goes out; none for HEAD, 304 or empty bodies. */
  private async prepare(req: IncomingMessage, res: ServerResponse, status: number, length: number, f: StoredFile, start: number, end: number): Promise<Prepared | undefined> {
    if (req.method !== 'GET' || status === 304 || length === 0) return undefined
    const i = Math.floor(start / f.chunkSize)
    const base = i * f.chunkSize
    return this.reader.prepare(f, i, start - base, Math.min(end, base + chunkLength(f, i) - 1) - base, res)
  }

  async chunk(req: IncomingMessage, res: ServerResponse, f: StoredFile, index: number, lastModified: number): Promise<void> {
    checkIndex(f, index)
    const size = chunkLength(f, index)
    const sha = f.chunks[index]!
    const plan = planResponse(req, {
      size, etag: etagOf(sha), lastModified, contentType: 'application/octet-stream',
      extra: { 'repr-digest': digestHeader(sha), 'reelcdn-version': f.version },
    }, this.maxRanges)
    const r = plan.ranges?.[0] ?? { start: 0, end: size - 1 }
    const first = req.method === 'GET' && plan.status !== 304 && plan.length > 0
      ? await this.reader.prepare(f, index, r.start, r.end, res) : undefined
    try {
      await sendPlanned(res, plan, size, (s, e, out) =>
        this.reader.writeChunk(f, index, s, e, out, first && first.start === s && first.end === e ? first : undefined))
    } finally {
      first?.body.destroy()
    }
  }

  /**
   * A chunk's block list (a CRC32C per 64 KiB block, packed big-endian),
   * checked against the manifest's `blocks` digest: what an edge verifies its
   * fill with, block by block. 404 for a title ingested before manifests
   * carried block lists.
   */
  async crcs(res: ServerResponse, f: StoredFile, index: number): Promise<void> {
    checkIndex(f, index)
    const crcs = await this.reader.verifiedBlockList(f, index)
    if (crcs === undefined) throw new NotFoundError(`the block list of chunk ${index} of ${f.name} (ingested before manifests carried block lists)`)
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': crcs.length,
      etag: etagOf(f.chunks[index]!), 'x-block-size': String(BLOCK_SIZE), 'reelcdn-version': f.version })
    res.end(crcs)
  }
}

function checkIndex(f: StoredFile, index: number): void {
  if (index >= f.chunks.length) throw new NotFoundError(`chunk ${index} of ${f.name} (it has ${f.chunks.length})`)
}
