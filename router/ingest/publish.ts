import type { IncomingMessage } from 'node:http'
import type { Logger } from '../../lib/logger.js'
import type { RouterMetrics } from '../../lib/metrics.js'
import { readJson } from '../../lib/http/http.js'
import { ConflictError, toCdnError } from '../../lib/errors.js'
import { isAdaptive, type Manifest } from '../../lib/manifest.js'
import type { Cluster } from '../cluster/cluster.js'
import type { Manifests } from '../cluster/manifests.js'
import { filesOf } from '../cluster/files.js'
import type { TitleMeta } from './meta.js'
import { adaptiveManifest, parseLadder } from './ladder.js'
import { verifyStored } from './verify-stored.js'
import type { TitleDeletes } from './deletes.js'

/**
 * Publishes an adaptive title (docs/abr.md, "Ingest", step 2), once its
 * renditions are stored (step 1, Ingestor.ingestRendition). In order:
 *   1. the body, at most origin.maxManifestBytes (413), parsed and checked as
 *      a ladder (ladder.ts: 400 naming the rendition);
 *   2. a published title with the same ladder version is `exists` (200);
 *      anything else published under the id is a 409, as for single files;
 *   3. every chunk of every rendition on `need` owners with its digest, and
 *      its block list the record's (verify-stored.ts: 409, 400 or 503
 *      naming the chunk);
 *   4. the manifest, written like a single file's (Manifests.publish: the
 *      primary first, so two racing publishes meet there).
 * Nothing is visible before step 4, and a failure anywhere leaves the
 * renditions' chunks stored for the next attempt (or, if none comes, the
 * repairer's orphan collection after orphanGraceMs).
 */
export interface PublishResult {
  status: 'created' | 'exists'
  contentId: string
  version: string
  size: number
  sha256: string
  chunkSize: number
  chunks: number
  adaptive: true
  renditions: { id: string; version: string; size: number; chunks: number }[]
}

export interface PublishOptions {
  chunkSize: number
  need: number
  /** chunks checked at once (router.publishConcurrency) */
  concurrency: number
  /** the largest manifest the shards take (origin.maxManifestBytes): the body's limit too */
  maxManifestBytes: number
}

export class Publisher {
  constructor(
    private readonly cluster: Cluster,
    private readonly manifests: Manifests,
    private readonly metrics: RouterMetrics,
    private readonly logger: Logger,
    private readonly opts: PublishOptions,
    private readonly onPublished: (m: Manifest) => void,
    /** this router's DELETEs of titles: a publish that meets one is a 409 (deletes.ts) */
    private readonly deletes: TitleDeletes,
  ) {}

  async publish(req: IncomingMessage, contentId: string, meta: TitleMeta): Promise<PublishResult> {
    const count = (result: string) => this.metrics.publishes.inc({ result })
    const mark = this.deletes.arrive(contentId)
    let m: Manifest
    try {
      const body = await readJson(req, this.opts.maxManifestBytes)
      m = adaptiveManifest(contentId, parseLadder(body, contentId, this.opts.chunkSize), meta, this.opts.chunkSize, this.opts.maxManifestBytes)
    } catch (err) {
      count(toCdnError(err).source === 'client' ? 'refused' : 'failed')
      throw err
    }
    const published = await this.manifests.fetch(contentId)
    if (published) {
      if (isAdaptive(published) && published.version === m.version) {
        count('exists')
        return resultOf('exists', published)
      }
      count('conflict')
      throw new ConflictError(isAdaptive(published)
        ? `title ${contentId} is published with another ladder (version ${published.version}, renditions ${published.renditions.map(r => r.id).join(', ')}); a new ladder needs a DELETE first`
        : `title ${contentId} is published as a single file; a ladder needs a DELETE first`)
    }
    const began = Date.now()
    try {
      await verifyStored(this.cluster, filesOf(m), { need: this.opts.need, concurrency: this.opts.concurrency,
        count: result => this.metrics.publishChecks.inc({ result }) })
    } catch (err) {
      const e = toCdnError(err)
      count(e.code === 'CDN_ERR_RENDITION_MISSING' ? 'missing' : e.source === 'client' ? 'refused' : 'failed')
      throw err
    }
    let status: 'created' | 'exists'
    try {
      // the renditions checked above are not what a DELETE of the title, started since, is removing
      this.deletes.check(contentId, mark)
      status = await this.manifests.publish(m, this.opts.need)
    } catch (err) {
      count(toCdnError(err).code === 'CDN_ERR_CONFLICT' ? 'conflict' : 'failed')
      throw err
    }
    count(status)
    if (status === 'created') this.onPublished(m)
    const chunks = m.renditions!.reduce((n, r) => n + r.chunks.length, 0)
    this.logger.info({ contentId, version: m.version, renditions: m.renditions!.length, chunks, checkMs: Date.now() - began }, 'adaptive title published')
    return resultOf(status, status === 'created' ? m : await this.manifests.get(contentId))
  }
}

function resultOf(status: PublishResult['status'], m: Manifest): PublishResult {
  return { status, contentId: m.contentId, version: m.version, size: m.size, sha256: m.sha256, chunkSize: m.chunkSize, chunks: 0, adaptive: true,
    renditions: (m.renditions ?? []).map(r => ({ id: r.id, version: r.version, size: r.size, chunks: r.chunks.length })) }
}
