import type { IncomingMessage } from 'node:http'
import { createHash } from 'node:crypto'
import type { Logger } from '../../lib/logger.js'
import type { RouterMetrics } from '../../lib/metrics.js'
import { BadRequestError, CdnError, ClientClosedError, ConflictError, DigestMismatchError, PayloadTooLargeError, toCdnError } from '../../lib/errors.js'
import { digestFromHeader } from '../../lib/integrity/digest.js'
import { chunkName } from '../../lib/ids.js'
import { bodyOf } from '../../lib/http/http.js'
import { isAdaptive, renditionOf, type Manifest } from '../../lib/manifest.js'
import { RENDITION_ID_RULE, isRenditionId } from '../../lib/media/rendition.js'
import { chunkKey, randomVersion, storageId, versionFromDigest } from '../cluster/keys.js'
import type { BufferPool, Lease } from './buffer-pool.js'
import type { Cluster } from '../cluster/cluster.js'
import type { Manifests } from '../cluster/manifests.js'
import type { TitleMeta } from './meta.js'
import type { ShardClient } from '../cluster/shard-client.js'
import { ShardRefusedError } from '../errors.js'
import { Upload, type Counted } from './upload.js'
import type { TitleDeletes } from './deletes.js'

/**
 * create(K, V): cuts an upload into chunks, stores each on its owners, then
 * publishes the manifest.
 *
 * Theory of operation. The request body is copied into pool buffers of
 * chunkSize bytes, hashed as it arrives. A full buffer is handed to an upload
 * task that writes it to every owner in parallel (one Buffer, never copied),
 * while the next buffer fills. At most `pipeline` uploads per ingest are in
 * flight, and every buffer comes from the shared BufferPool, so memory stays
 * bounded: the client is back-pressured when both limits are reached (we stop
 * reading the socket).
 *
 * Buffer ownership. A buffer is a Lease (buffer-pool.ts), settled exactly
 * once by its one owner: the chunking loop while it fills the buffer, then
 * launch(), to which the loop hands it (clearing its own reference first),
 * then the upload task. The task settles it only once every owner's PUT has
 * settled, because undici may still be sending from it until then; and if a
 * PUT failed or was cut, bytes of it may still be queued on that socket, so
 * the buffer is retired (the pool lends a new one) rather than reused. A
 * client that leaves while its upload waits for a buffer stops waiting.
 *
 * An owner already holding the chunk with the right digest (HEAD shows its
 * ETag) is not sent it again: that is how a re-run resumes. With a random
 * version nothing can be there yet, so the HEAD is skipped.
 *
 * The manifest is written only after every chunk reached `need` owners (all
 * `copies` by default). Anything that fails first — client gone, a shard
 * refusing, a digest mismatch — leaves chunks but no manifest: invisible to
 * readers, reused by the next run, collected by the repairer otherwise.
 * Uploads in flight when the client leaves are let finish: they are whole,
 * verified chunks a re-run will not have to send.
 *
 * A rendition of an adaptive title (docs/abr.md, "Ingest") is uploaded the
 * same way, with its digest required, under `<contentId>.<its version>`, and
 * publishes nothing: router/ingest/publish.ts publishes the ladder once every
 * rendition is stored. Until then its chunks are orphans like an interrupted
 * ingest's.
 */
export interface IngestResult {
  status: 'created' | 'exists'
  contentId: string
  version: string
  size: number
  sha256: string
  chunkSize: number
  chunks: number
  replicas: { stored: number; resumed: number }
}

/** What a rendition upload answers: what the publish body's record of it needs from storage. */
export interface RenditionUploadResult {
  status: 'stored' | 'exists'
  contentId: string
  rendition: string
  version: string
  size: number
  sha256: string
  chunkSize: number
  chunks: string[]
  blocks: string[]
  replicas: { stored: number; resumed: number }
}

export interface IngestOptions {
  chunkSize: number
  /** owners that must hold each chunk and the manifest */
  need: number
  retries: number
  /** uploads in flight per ingest */
  pipeline: number
  /** the largest manifest the shards take (origin.maxManifestBytes): a title whose manifest would be larger is a 413 */
  maxManifestBytes: number
}

/** An upload being received now: what the status console lists as an ingest in progress. */
export interface IngestInProgress {
  contentId: string
  rendition: string | null
  startedAt: number
  /** the request's Content-Length, null when chunked */
  expectedBytes: number | null
  /** chunk replicas stored (or found there) so far */
  replicas: Upload['replicas']
}

export class Ingestor {
  /** uploads running now (an entry per request, removed when it ends either way) */
  readonly inProgress = new Set<IngestInProgress>()
  /** the upload of each storage id running here (`upload`): another of the same id waits for it */
  private readonly running = new Map<string, Promise<unknown>>()

  constructor(
    private readonly cluster: Cluster,
    private readonly manifests: Manifests,
    private readonly pool: BufferPool,
    private readonly metrics: RouterMetrics,
    private readonly logger: Logger,
    private readonly opts: IngestOptions,
    private readonly onPublished: (m: Manifest) => void,
    /** this router's DELETEs of titles: an upload that meets one is a 409 (deletes.ts) */
    private readonly deletes: TitleDeletes,
  ) {}

  async ingest(req: IncomingMessage, contentId: string, meta: TitleMeta): Promise<IngestResult> {
    const mark = this.deletes.arrive(contentId)
    const claimed = claimedDigest(req, false)
    const published = await this.manifests.fetch(contentId)
    if (published && isAdaptive(published)) {
      this.metrics.ingests.inc({ result: 'conflict' })
      throw new ConflictError(`title ${contentId} is published as an adaptive title (${published.renditions.map(r => r.id).join(', ')}); a single file needs a DELETE first`)
    }
    if (published) {
      // immutable once published: the same bytes are a no-op, others a 409
      const sha = claimed ?? await hashBody(bodyOf(req))
      if (sha !== published.sha256) {
        this.metrics.ingests.inc({ result: 'conflict' })
        throw new ConflictError(`title ${contentId} is published with sha256 ${published.sha256}; a different body needs a DELETE first`)
      }
      this.metrics.ingests.inc({ result: 'exists' })
      return resultOf('exists', published, { stored: 0, resumed: 0 })
    }
    const version = claimed ? versionFromDigest(claimed, this.opts.chunkSize) : randomVersion()
    // a manifest the shards would refuse: known before the body when its length is, else once it is read (below)
    const declared = Number(req.headers['content-length'])
    if (Number.isSafeInteger(declared) && declared > 0) this.fits(contentId, version, meta, declared)
    let up!: Upload
    let counted: Counted
    try {
      counted = await this.upload(contentId, version, claimed, `title ${contentId}`, u => { up = u; return this.tracked(contentId, null, req, u) },
        this.chunksThatFit(contentId, version, meta))
    } catch (err) {
      this.metrics.ingests.inc({ result: 'failed' })
      throw err
    }
    const m: Manifest = { contentId, version, size: counted.size, chunkSize: this.opts.chunkSize, sha256: counted.sha256,
      chunks: counted.chunks, blocks: counted.blocks, ...meta, createdAt: Date.now() }
    const bytes = Buffer.byteLength(JSON.stringify(m))
    if (bytes > this.opts.maxManifestBytes) {
      this.metrics.ingests.inc({ result: 'failed' })
      throw tooLarge(contentId, `${bytes} bytes`, this.opts.maxManifestBytes)
    }
    try {
      this.deletes.check(contentId, mark)
    } catch (err) {
      this.metrics.ingests.inc({ result: 'conflict' })
      throw err
    }
    const status = await this.manifests.publish(m, this.opts.need)
    this.metrics.ingests.inc({ result: status })
    if (status === 'created') this.onPublished(m)
    this.logger.info({ contentId, version, size: m.size, chunks: m.chunks.length, ...up.replicas }, 'title ingested')
    return resultOf(status, m, up.replicas)
  }

  /**
   * PUT /v1/content/{id}/renditions/{rid}: stores one rendition file's chunks,
   * publishing nothing. For a published title, the same file as its
   * published rendition `rid` is `exists`, known from the digest before the
   * body; anything else is a 409.
   */
  async ingestRendition(req: IncomingMessage, contentId: string, rid: string): Promise<RenditionUploadResult> {
    if (!isRenditionId(rid)) throw new BadRequestError(`invalid rendition id ${JSON.stringify(rid)}: ${RENDITION_ID_RULE}`, 'CDN_ERR_INVALID_ID')
    const mark = this.deletes.arrive(contentId)
    const claimed = claimedDigest(req, true)!
    const what = `rendition ${rid} of ${contentId}`
    const published = await this.manifests.fetch(contentId)
    if (published) {
      const r = renditionOf(published, rid)
      if (r?.sha256 !== claimed) {
        this.metrics.renditionUploads.inc({ result: 'conflict' })
        throw new ConflictError(!isAdaptive(published) ? `title ${contentId} is published as a single file; a ladder needs a DELETE first`
          : r ? `title ${contentId} is published with ${what} of sha256 ${r.sha256}; another file needs a DELETE first`
            : `title ${contentId} is published without a rendition ${rid} (it has ${published.renditions.map(x => x.id).join(', ')}); another ladder needs a DELETE first`)
      }
      this.metrics.renditionUploads.inc({ result: 'exists' })
      return { status: 'exists', contentId, rendition: rid, version: r.version, size: r.size, sha256: r.sha256, chunkSize: published.chunkSize,
        chunks: r.chunks, blocks: r.blocks, replicas: { stored: 0, resumed: 0 } }
    }
    const version = versionFromDigest(claimed, this.opts.chunkSize)
    let counted: Counted
    let up!: Upload
    try {
      counted = await this.upload(contentId, version, claimed, what, u => { up = u; return this.tracked(contentId, rid, req, u) })
      if (counted.size === 0) throw new BadRequestError(`${what} is empty`, 'CDN_ERR_BAD_RENDITION')
      // stored is what a ladder's publish will name: not while the title's DELETE may be removing these chunks
      this.deletes.check(contentId, mark)
    } catch (err) {
      this.metrics.renditionUploads.inc({ result: 'failed' })
      throw err
    }
    this.metrics.renditionUploads.inc({ result: 'stored' })
    this.logger.info({ contentId, rendition: rid, version, size: counted.size, chunks: counted.chunks.length, ...up.replicas }, 'rendition stored')
    return { status: 'stored', contentId, rendition: rid, version, size: counted.size, sha256: counted.sha256, chunkSize: this.opts.chunkSize,
      chunks: counted.chunks, blocks: counted.blocks, replicas: up.replicas }
  }

  /**
   * Stores one chunk on its owners; resolves once `need` of them hold it.
   * Once it settles, `use.mayBeRead` tells whether `data` may still be read by
   * a socket: set when a PUT of it failed or was cut (bytes of it may still be
   * queued there), left false when every PUT was answered 2xx (the shard had
   * read the whole body) or none was needed.
   */
  async storeChunk(sid: string, index: number, sha256: string, data: Buffer, mayExist: boolean,
    replicas: IngestResult['replicas'], use: { mayBeRead: boolean }, created: { index: number; shard: ShardClient }[] = []): Promise<void> {
    const owners = this.cluster.owners(chunkKey(sid, index))
    const results = await Promise.allSettled(owners.map(s => this.storeOn(s, sid, index, sha256, data, mayExist, use)))
    let ok = 0
    let firstErr: CdnError | undefined
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') {
        ok++
        replicas[r.value]++
        if (r.value === 'stored') created.push({ index, shard: owners[i]! })
        this.metrics.ingestChunks.inc({ result: r.value })
      } else {
        const e = toCdnError(r.reason)
        // the error answered: a final one over a retryable one, and a full disk over room held for the moment by uploads
        if (!firstErr || (firstErr.retryable && !e.retryable) || (firstErr.source === 'client' && e.source === 'storage')) firstErr = e
      }
    }
    if (ok < this.opts.need) throw firstErr!
    if (firstErr) this.logger.warn({ chunk: chunkName(sid, index), err: firstErr.message }, 'chunk stored on fewer than copies owners; the repairer will add the rest')
  }

  private async storeOn(s: ShardClient, sid: string, index: number, sha256: string, data: Buffer, mayExist: boolean, use: { mayBeRead: boolean }): Promise<'stored' | 'resumed'> {
    // a PUT of an earlier attempt that failed may have stored the chunk all the same (its answer lost): found there
    // afterwards, it is this upload's creation, not a copy it resumed (what a refused upload deletes: `discard`)
    let putBefore = false
    for (let attempt = 0; ; attempt++) {
      let putting = false
      try {
        if (mayExist) {
          const have = await s.headChunk(sid, index).catch(err => {
            // a corrupt copy with our digest: the PUT below replaces it
            if (err instanceof ShardRefusedError && err.upstreamCode === 'CDN_ERR_CORRUPT') return null
            throw err
          })
          if (have === sha256) return putBefore ? 'stored' : 'resumed'
          if (have !== null)
            throw new ConflictError(`shard ${s.id} holds chunk ${chunkName(sid, index)} with sha256 ${have}, not ${sha256}`)
        }
        putting = true
        return await s.putChunk(sid, index, sha256, data.length, data) === 'created' ? 'stored' : 'resumed'
      } catch (err) {
        // an early answer or a cut connection: undici may not have sent all of `data` yet
        if (putting) use.mayBeRead = putBefore = true
        const e = toCdnError(err)
        if (!e.retryable || attempt >= this.opts.retries) throw e
        await new Promise(r => setTimeout(r, 100 * 2 ** attempt))
      }
    }
  }

  get chunkSize(): number {
    return this.opts.chunkSize
  }

  get pipeline(): number {
    return this.opts.pipeline
  }

  acquire(signal?: AbortSignal): Promise<Lease> {
    return this.pool.acquire(signal)
  }

  /** Gives an uploaded buffer back: retired if a failed or cut PUT may still have bytes of it queued on a socket. */
  settle(lease: Lease, mayBeRead: boolean): void {
    if (!mayBeRead) return lease.release()
    lease.retire()
    this.metrics.ingestBuffersRetired.inc()
  }

  /**
   * One upload of storage id `sid` (its chunks, then its digest checked against `claimed`, when given), after any
   * other of the same id on this router has ended: two uploads of the same bytes, or a retry arriving while a cut
   * one winds down, never store and check chunks of one version at once. A body that does not hash to the digest
   * it claimed stored its chunks under the version that digest names: the copies it created (not those it found
   * there, which other uploads may name) are deleted before the 400, best effort (what is left, the repairer
   * collects as orphans), so the right bytes sent next are not refused for them, which a DELETE could not fix as
   * nothing was published.
   */
  private async upload(contentId: string, version: string, claimed: string | undefined, what: string, fn: (up: Upload) => Promise<Counted>,
    limit?: { chunks: number; error: () => Error }): Promise<Counted> {
    const sid = storageId(contentId, version)
    for (let before = this.running.get(sid); before !== undefined; before = this.running.get(sid)) await before.catch(() => {})
    const up = new Upload(this, sid, claimed !== undefined, limit?.chunks, limit?.error)
    const run = (async () => {
      const counted = await fn(up)
      if (claimed !== undefined && counted.sha256 !== claimed) {
        await this.discard(contentId, version, up.created)
        throw new DigestMismatchError(what, claimed, counted.sha256)
      }
      return counted
    })()
    this.running.set(sid, run)
    try {
      return await run
    } finally {
      if (this.running.get(sid) === run) this.running.delete(sid)
    }
  }

  /**
   * Deletes the chunk copies a refused upload created; a copy that stays is logged, and collected as an orphan.
   * Not if the version is published meanwhile (by another router, which does not wait for this one's uploads):
   * its manifest may name those copies.
   */
  private async discard(contentId: string, version: string, created: readonly { index: number; shard: ShardClient }[]): Promise<void> {
    const sid = storageId(contentId, version)
    const m = await this.manifests.fetch(contentId).catch(() => undefined)
    if (m && (m.version === version || m.renditions?.some(r => r.version === version))) {
      this.logger.info({ sid }, 'a refused upload\'s chunk copies kept: their version is published')
      return
    }
    const results = await Promise.allSettled(created.map(c => c.shard.deleteChunk(sid, c.index)))
    const left = results.flatMap((r, i) => r.status === 'rejected' ? [`${created[i]!.shard.id} ${chunkName(sid, created[i]!.index)}: ${(r.reason as Error).message}`] : [])
    if (left.length) this.logger.warn({ sid, left }, 'a refused upload\'s chunk copies not deleted; the repairer will collect them')
  }

  /** Throws a 413 if the manifest of a `size`-byte title would be larger than the shards take. */
  private fits(contentId: string, version: string, meta: TitleMeta, size: number): void {
    const bytes = this.manifestBytes(contentId, version, meta, size, Math.ceil(size / this.opts.chunkSize))
    if (bytes > this.opts.maxManifestBytes) {
      this.metrics.ingests.inc({ result: 'failed' })
      throw tooLarge(contentId, `${bytes} bytes`, this.opts.maxManifestBytes)
    }
  }

  /**
   * The chunks past which a title's manifest is surely larger than the shards take, for a body of unknown length:
   * each chunk adds two 64-digit digests (134 bytes) to the manifest of one chunk, whose size takes one digit here
   * (so this errs on the side of letting an upload go on; the manifest's exact size is checked before publishing).
   */
  private chunksThatFit(contentId: string, version: string, meta: TitleMeta): { chunks: number; error: () => Error } {
    const one = this.manifestBytes(contentId, version, meta, 0, 1)
    const max = this.opts.maxManifestBytes
    return { chunks: one > max ? 0 : 1 + Math.floor((max - one) / 134), error: () => tooLarge(contentId, `more than ${max} bytes`, max) }
  }

  /**
   * The bytes of the manifest of a `size`-byte title of `n` (at least 1) chunks: its digests have a fixed length (64
   * hex digits), so each chunk past the first adds two of them to `chunks` and `blocks`, 134 bytes with their quotes
   * and commas.
   */
  private manifestBytes(contentId: string, version: string, meta: TitleMeta, size: number, n: number): number {
    const digest = '0'.repeat(64)
    const one: Manifest = { contentId, version, size, chunkSize: this.opts.chunkSize, sha256: digest, chunks: [digest], blocks: [digest],
      ...meta, createdAt: Date.now() }
    return Buffer.byteLength(JSON.stringify(one)) + 134 * (n - 1)
  }

  /** `run`, listed in `inProgress` while it runs. */
  private async tracked(contentId: string, rendition: string | null, req: IncomingMessage, up: Upload): Promise<Counted> {
    const len = Number(req.headers['content-length'])
    const entry: IngestInProgress = { contentId, rendition, startedAt: Date.now(), expectedBytes: Number.isSafeInteger(len) ? len : null, replicas: up.replicas }
    this.inProgress.add(entry)
    try {
      return await run(up, req)
    } finally {
      this.inProgress.delete(entry)
    }
  }

  countBytes(n: number): void {
    this.metrics.ingestBytes.inc(n)
  }
}

function tooLarge(contentId: string, size: string, max: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`the manifest of ${contentId} would be ${size}, more than the shards take (origin.maxManifestBytes, ${max}): ` +
    'a larger cluster.chunkSize, or a larger origin.maxManifestBytes on every shard and router')
}

/** The body's SHA-256 from Content-Digest (hex); a 400 if it is malformed, or missing where `required`. */
function claimedDigest(req: IncomingMessage, required: boolean): string | undefined {
  const given = req.headers['content-digest']
  const claimed = digestFromHeader(given)
  if (given !== undefined && !claimed)
    throw new BadRequestError('Content-Digest must carry the whole body\'s sha-256 (RFC 9530): sha-256=:<base64>:', 'CDN_ERR_NO_DIGEST')
  if (required && !claimed)
    throw new BadRequestError('a rendition upload needs Content-Digest with the whole file\'s sha-256 (RFC 9530): sha-256=:<base64>:', 'CDN_ERR_NO_DIGEST')
  return claimed
}

/** Runs an upload over the request body; a client gone while its upload waits for a buffer stops waiting. */
async function run(up: Upload, req: IncomingMessage): Promise<Counted> {
  const gone = new AbortController()
  const onClose = () => { if (!req.complete) gone.abort(new ClientClosedError()) }
  req.once('close', onClose)
  try {
    return await up.run(bodyOf(req), gone.signal)
  } finally {
    req.off('close', onClose)
  }
}

async function hashBody(body: AsyncIterable<Buffer>): Promise<string> {
  const h = createHash('sha256')
  for await (const piece of body) h.update(piece)
  return h.digest('hex')
}

function resultOf(status: IngestResult['status'], m: Manifest, replicas: IngestResult['replicas']): IngestResult {
  return { status, contentId: m.contentId, version: m.version, size: m.size, sha256: m.sha256, chunkSize: m.chunkSize,
    chunks: m.chunks.length, replicas }
}
