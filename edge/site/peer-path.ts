import type { ChunkRef } from '../title.js'

/**
 * The peer fill wire (docs/peer-fill.md, contract-17), one place for both
 * sides so they cannot drift:
 *   GET /v1/peer/{contentId}/chunk/{index}[/crcs]           a chunk of a single-file title, or its block list
 *   GET /v1/peer/{contentId}/r/{rid}/chunk/{index}[/crcs]   the same, of a rendition (as the edge's upstream paths)
 * with `Authorization: Bearer <edge credential>`, `X-Reelcdn-Edge-Id: <the
 * asking edge>` and `X-Reelcdn-Peer-Hop: 1`; a chunk request may carry one
 * `Range: bytes=a-b` inside the chunk.
 */
export const PEER_ID = 'x-reelcdn-edge-id'
export const PEER_HOP = 'x-reelcdn-peer-hop'
/**
 * On the owner's chunk answer: where it had the chunk (ram, disk: the site
 * held it; fill: it is fetching it now). The asker counts the bytes players
 * get from a held chunk as the site's hits (reelcdn_edge_sibling_bytes_served_total).
 */
export const PEER_FROM = 'x-reelcdn-peer-from'

/** Where the owner answers a chunk (append `/crcs` for its block list). */
export function peerChunkPath(ref: Pick<ChunkRef, 'contentId' | 'rid' | 'index'>): string {
  return ref.rid === undefined ? `/v1/peer/${ref.contentId}/chunk/${ref.index}` : `/v1/peer/${ref.contentId}/r/${ref.rid}/chunk/${ref.index}`
}
