import type { IncomingMessage, ServerResponse } from 'node:http'
import { NotAdaptiveError, NotFoundError } from '../../lib/errors.js'
import { isAdaptive, renditionOf, type Manifest } from '../../lib/manifest.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { MASTER } from '../../lib/media/hls.js'
import { MPD } from '../../lib/media/dash.js'
import { adaptiveFile, playlistBody, type AdaptiveFile } from '../../lib/media/files.js'
import { planResponse, sendPlanned } from '../../lib/representation.js'
import type { Manifests } from '../cluster/manifests.js'
import { renditionFile } from '../cluster/files.js'
import type { FileServer } from './file-server.js'

/**
 * The files of an adaptive title under `/v1/content/{id}/` (docs/abr.md,
 * "URLs"): `master.m3u8`, `{rid}.m3u8`, `manifest.mpd` — generated from the
 * manifest by lib/media (pure functions, so the edge answers byte-identical
 * playlists) — and `{rid}.mp4`, a rendition file read like a single-file
 * title's bytes (router/read/file-server.ts). Also `r/{rid}/chunks/{i}` and
 * its `/crcs`, what edges fill rendition bytes from.
 *
 * A playlist is a representation of its own: ETag the manifest's version (the
 * ladder's, so a re-published ladder is a new tag), Last-Modified the
 * publication, a short max-age (router.manifestTtlMs: how long a DELETE takes
 * to reach every router anyway), and conditionals and ranges like any
 * content. Each is built once per cached manifest object.
 *
 * Errors name what was wrong: a name that is none of these files, a
 * single-file title (CDN_ERR_NOT_ADAPTIVE, naming its own URL), a rendition
 * id the title does not have (naming the ones it has).
 */
export function parseFileName(contentId: string, name: string): AdaptiveFile {
  const f = adaptiveFile(name)
  if (f === undefined) throw new NotFoundError(`file ${JSON.stringify(name)} of ${contentId} (an adaptive title has ${MASTER}, ${MPD}, {rid}.m3u8 and {rid}.mp4)`)
  return f
}

export interface AdaptiveReadOptions {
  maxRanges: number
  /** Cache-Control max-age of playlists, in seconds */
  playlistMaxAgeS: number
}

const built = new WeakMap<Manifest, Map<string, { body: Buffer; type: string }>>()

export class AdaptiveReads {
  constructor(private readonly manifests: Manifests, private readonly files: FileServer, private readonly o: AdaptiveReadOptions) {}

  /** GET/HEAD /v1/content/{id}/{name} (and its tokened form). */
  async file(req: IncomingMessage, res: ServerResponse, contentId: string, name: string): Promise<void> {
    const what = parseFileName(contentId, name)
    const m = await this.adaptive(contentId, name)
    if (what.kind === 'rendition') {
      const r = rendition(m, what.rid)
      return this.files.file(req, res, renditionFile(m, r), { contentType: r.contentType, lastModified: m.createdAt })
    }
    const { body, type } = playlist(m, name, what)
    const plan = planResponse(req, {
      size: body.length, etag: `"${m.version}"`, lastModified: m.createdAt, contentType: type,
      cacheControl: `max-age=${this.o.playlistMaxAgeS}`, extra: { 'reelcdn-version': m.version },
    }, this.o.maxRanges)
    await sendPlanned(res, plan, body.length, async (s, e, out) => void out.write(body.subarray(s, e + 1)))
  }

  /** GET/HEAD /v1/content/{id}/r/{rid}/chunks/{i}: a rendition's chunk, as edges fill it. */
  async chunk(req: IncomingMessage, res: ServerResponse, contentId: string, rid: string, index: number): Promise<void> {
    const m = await this.adaptive(contentId, `r/${rid}/chunks/${index}`)
    return this.files.chunk(req, res, renditionFile(m, rendition(m, rid)), index, m.createdAt)
  }

  /** GET /v1/content/{id}/r/{rid}/chunks/{i}/crcs: that chunk's verified block list. */
  async crcs(res: ServerResponse, contentId: string, rid: string, index: number): Promise<void> {
    const m = await this.adaptive(contentId, `r/${rid}/chunks/${index}/crcs`)
    return this.files.crcs(res, renditionFile(m, rendition(m, rid)), index)
  }

  private async adaptive(contentId: string, name: string): Promise<Manifest & { renditions: Rendition[] }> {
    const m = await this.manifests.get(contentId)
    if (!isAdaptive(m)) throw new NotAdaptiveError(contentId, name)
    return m
  }
}

function rendition(m: Manifest, rid: string): Rendition {
  const r = renditionOf(m, rid)
  if (!r) throw new NotFoundError(`rendition ${rid} of ${m.contentId} (its renditions: ${m.renditions!.map(x => x.id).join(', ')})`)
  return r
}

function playlist(m: Manifest & { renditions: Rendition[] }, name: string, what: Exclude<AdaptiveFile, { kind: 'rendition' }>): { body: Buffer; type: string } {
  let cache = built.get(m)
  if (!cache) built.set(m, cache = new Map())
  let p = cache.get(name)
  if (p === undefined) {
    p = playlistBody(m.renditions, what.kind, what.kind === 'media' ? rendition(m, what.rid) : undefined)
    cache.set(name, p)
  }
  return p
}
