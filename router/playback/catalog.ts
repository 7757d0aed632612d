import type { Logger } from '../../lib/logger.js'
import { BadRequestError } from '../../lib/errors.js'
import { isAdaptive, parseManifest, type Manifest } from '../../lib/manifest.js'
import { durationSeconds } from '../../lib/media/rendition.js'
import { sha256Hex } from '../cluster/keys.js'
import type { Cluster } from '../cluster/cluster.js'

/**
 * The catalog behind `GET /v1/content`: an in-memory index of every published
 * title's metadata, rebuilt from the shards' manifest lists every
 * `refreshMs` (only manifests whose ETag changed are fetched) and updated at
 * once by this router's own ingests and deletes. Other routers' changes show
 * up within one refresh. A title disappears on refresh only when every shard
 * answered the listing, so an unreachable shard never hides titles.
 *
 * `category` matches a whole category and `q` part of the title or contentId,
 * both ignoring case and accents. Listing is keyset-paginated by contentId; the cursor is the last contentId
 * returned, base64url-encoded so clients treat it as opaque. An adaptive title's
 * item also says so (`adaptive: true`), with its rendition ids and its
 * duration in seconds; a single-file title's item is as before.
 * @NOTE queries scan the index linearly: fine for tens of thousands of titles.
 */
export interface CatalogItem {
  contentId: string
  title: string
  categories: string[]
  contentType: string
  size: number
  createdAt: number
  rights: Manifest['rights']
  /** only on an adaptive title */
  adaptive?: true
  renditions?: string[]
  duration?: number
}

/** `at`: when the entry was set, so a refresh that listed before a local ingest does not drop it */
interface Entry { item: CatalogItem; etag: string; at: number }

export interface CatalogQuery {
  category: string | null
  q: string | null
  limit: number
  after: string | null
}

export class Catalog {
  private readonly entries = new Map<string, Entry>()
  private sorted: string[] | null = null
  private loading: Promise<void> | undefined
  private loaded = false
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly cluster: Cluster, private readonly refreshMs: number, private readonly logger: Logger) {}

  start(): void {
    this.timer = setInterval(() => { void this.refresh() }, this.refreshMs).unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  upsert(m: Manifest): void {
    this.entries.set(m.contentId, { item: itemOf(m), etag: `"${sha256Hex(JSON.stringify(m))}"`, at: Date.now() })
    this.sorted = null
  }

  get(contentId: string): CatalogItem | undefined {
    return this.entries.get(contentId)?.item
  }

  remove(contentId: string): void {
    if (this.entries.delete(contentId)) this.sorted = null
  }

  /** One refresh at a time; callers during one share it. */
  refresh(): Promise<void> {
    this.loading ??= this.load().catch(err => {
      this.logger.warn({ err: (err as Error).message }, 'catalog refresh failed')
    }).finally(() => { this.loading = undefined })
    return this.loading
  }

  private async load(): Promise<void> {
    const began = Date.now()
    const listed = new Map<string, { etag: string; shard: number }>()
    let complete = true
    await Promise.all(this.cluster.shards.map(async (s, i) => {
      try {
        let after: string | null = null
        do {
          const page = await s.listManifests(after, 1000)
          for (const m of page.manifests) if (!listed.has(m.contentId)) listed.set(m.contentId, { etag: m.etag, shard: i })
          after = page.next
        } while (after)
      } catch {
        complete = false
      }
    }))
    for (const [id, l] of listed) {
      if (this.entries.get(id)?.etag === l.etag) continue
      try {
        const got = await this.cluster.shards[l.shard]!.getManifest(id)
        if (got) this.entries.set(id, { item: itemOf(parseManifest(JSON.parse(got.body))), etag: got.etag, at: began })
      } catch (err) {
        this.logger.warn({ contentId: id, err: (err as Error).message }, 'catalog could not read a manifest')
      }
    }
    if (complete) for (const [id, e] of this.entries) if (!listed.has(id) && e.at < began) this.entries.delete(id)
    this.sorted = null
    this.loaded = true
  }

  async query(q: CatalogQuery): Promise<{ items: CatalogItem[]; next: string | null }> {
    if (!this.loaded) await this.refresh()
    this.sorted ??= [...this.entries.keys()].sort()
    const ids = this.sorted
    let i = 0
    if (q.after !== null) {
      // first id greater than the cursor
      let lo = 0
      let hi = ids.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (ids[mid]! <= q.after) lo = mid + 1
        else hi = mid
      }
      i = lo
    }
    const cat = q.category === null ? null : fold(q.category)
    const text = q.q === null ? null : fold(q.q)
    const items: CatalogItem[] = []
    for (; i < ids.length && items.length < q.limit; i++) {
      const e = this.entries.get(ids[i]!)
      if (!e) continue
      if (cat !== null && !e.item.categories.some(c => fold(c) === cat)) continue
      if (text !== null && !fold(e.item.title).includes(text) && !e.item.contentId.toLowerCase().includes(text)) continue
      items.push(e.item)
    }
    const more = i < ids.length
    return { items, next: more && items.length > 0 ? encodeCursor(items[items.length - 1]!.contentId) : null }
  }
}

/** Case- and accent-insensitive form: "Été" matches "ete". */
function fold(s: string): string {
  return s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase()
}

function itemOf(m: Manifest): CatalogItem {
  const item: CatalogItem = { contentId: m.contentId, title: m.title, categories: m.categories, contentType: m.contentType, size: m.size,
    createdAt: m.createdAt, rights: m.rights }
  if (isAdaptive(m)) {
    item.adaptive = true
    item.renditions = m.renditions.map(r => r.id)
    item.duration = titleDuration(m)
  }
  return item
}

/** An adaptive title's duration in seconds: its longest rendition's, to the millisecond (as its MPD says). */
export function titleDuration(m: Pick<Manifest, 'renditions'>): number {
  return Math.round(Math.max(0, ...(m.renditions ?? []).map(durationSeconds)) * 1000) / 1000
}

export function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url')
}

export function parseCatalogQuery(p: URLSearchParams): CatalogQuery {
  const limitRaw = p.get('limit')
  let limit = 50
  if (limitRaw !== null) {
    if (!/^[1-9][0-9]{0,3}$/.test(limitRaw) || Number(limitRaw) > 1000) throw new BadRequestError(`limit must be an integer from 1 to 1000, got ${JSON.stringify(limitRaw)}`)
    limit = Number(limitRaw)
  }
  const cursor = p.get('cursor')
  let after: string | null = null
  if (cursor !== null) {
    if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) throw new BadRequestError('cursor must be a value returned as next by an earlier listing', 'CDN_ERR_BAD_CURSOR')
    after = Buffer.from(cursor, 'base64url').toString('utf8')
  }
  const category = p.get('category')
  const q = p.get('q')
  if (category !== null && category.length > 100) throw new BadRequestError('category is at most 100 characters')
  if (q !== null && q.length > 200) throw new BadRequestError('q is at most 200 characters')
  return { category: category || null, q: q || null, limit, after }
}
