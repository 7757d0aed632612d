import type { ChunkInfo, ShardClient } from '../cluster/shard-client.js'

/**
 * The cluster's holdings, key by key, in bounded memory. Each shard lists its
 * chunks (and manifests) in key order, paged; a k-way merge of those lists
 * yields every key once with all the shards that hold it. Only one page per
 * shard is in memory at a time, however many chunks the cluster stores.
 *
 * Order: shards sort by (content_id, idx) in SQLite's BINARY collation, which
 * is code-unit order for the ASCII ids we allow: the same as JS `<`.
 * A shard that fails mid-listing fails the whole merge: a holder list with a
 * silent gap could make a replica look missing (copied for nothing) or a
 * misplaced copy look like the last one.
 */
export interface Holding {
  shard: string
  sha256: string
  state: 'ok' | 'corrupt'
  size: number
  createdAt: number
}

export interface ChunkHoldings {
  sid: string
  index: number
  holders: Holding[]
}

export interface ManifestHoldings {
  contentId: string
  holders: { shard: string; etag: string }[]
}

/** Pages through any sorted listing, one page ahead. */
async function* paged<T>(fetch: (after: string | null) => Promise<{ items: T[]; next: string | null }>): AsyncGenerator<T> {
  let after: string | null = null
  do {
    const page: { items: T[]; next: string | null } = await fetch(after)
    yield* page.items
    after = page.next
  } while (after)
}

/** Merges sorted streams; `cmp` orders items, `same` groups them. */
async function* merge<T, G>(streams: AsyncGenerator<T>[], cmp: (a: T, b: T) => number, group: (items: { i: number; item: T }[]) => G): AsyncGenerator<G> {
  const heads: (T | undefined)[] = await Promise.all(streams.map(async s => (await s.next()).value as T | undefined))
  for (;;) {
    let min: T | undefined
    for (const h of heads) if (h !== undefined && (min === undefined || cmp(h, min) < 0)) min = h
    if (min === undefined) return
    const items: { i: number; item: T }[] = []
    const advancing: Promise<void>[] = []
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i]
      if (h !== undefined && cmp(h, min) === 0) {
        items.push({ i, item: h })
        advancing.push(streams[i]!.next().then(r => { heads[i] = r.value as T | undefined }))
      }
    }
    await Promise.all(advancing)
    yield group(items)
  }
}

function cmpChunk(a: ChunkInfo, b: ChunkInfo): number {
  return a.contentId < b.contentId ? -1 : a.contentId > b.contentId ? 1 : a.index - b.index
}

export function chunkHoldings(shards: readonly ShardClient[], pageSize = 1000): AsyncGenerator<ChunkHoldings> {
  const streams = shards.map(s => paged(async after => {
    const p = await s.listChunks(after, pageSize)
    return { items: p.chunks, next: p.next }
  }))
  return merge(streams, cmpChunk, items => ({
    sid: items[0]!.item.contentId,
    index: items[0]!.item.index,
    holders: items.map(({ i, item }) => ({ shard: shards[i]!.id, sha256: item.sha256, state: item.state, size: item.size, createdAt: item.createdAt })),
  }))
}

export function manifestHoldings(shards: readonly ShardClient[], pageSize = 1000): AsyncGenerator<ManifestHoldings> {
  const streams = shards.map(s => paged(async after => {
    const p = await s.listManifests(after, pageSize)
    return { items: p.manifests, next: p.next }
  }))
  return merge(streams, (a, b) => (a.contentId < b.contentId ? -1 : a.contentId > b.contentId ? 1 : 0), items => ({
    contentId: items[0]!.item.contentId,
    holders: items.map(({ i, item }) => ({ shard: shards[i]!.id, etag: item.etag })),
  }))
}
