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

/** Where the owner answers a chunk (append `/crcs` for its block list). */
export function peerChunkPath(ref: Pick<ChunkRef, 'contentId' | 'rid' | 'index'>): string {
  return ref.rid === undefined ? `/v1/peer/${ref.contentId}/chunk/${ref.index}` : `/v1/peer/${ref.contentId}/r/${ref.rid}/chunk/${ref.index}`
}
