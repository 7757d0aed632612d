import type { Logger } from '../../lib/logger.js'
import { chunkKey } from './keys.js'
import { filesOf } from './files.js'
import type { Cluster } from './cluster.js'
import type { Manifests } from './manifests.js'

/**
 * delete(K): the manifest goes first, from every shard, so the title is
 * invisible before any of its chunks is touched (a reader never finds a
 * manifest whose chunks are gone). Then each chunk of each of its files (its
 * own, or every rendition's: router/cluster/files.ts) is deleted from its owners.
 * A chunk delete that fails is logged and left: with no manifest naming it,
 * the repairer collects it as an orphan. Other routers may serve the title
 * from their manifest cache for up to router.manifestTtlMs, and their reads
 * then fail over to 503 once the chunks are gone.
 */
export async function removeTitle(cluster: Cluster, manifests: Manifests, logger: Logger, contentId: string) {
  const m = await manifests.get(contentId)
  await manifests.remove(contentId)
  let deleted = 0
  let leftOver = 0
  const queue = filesOf(m).flatMap(f => f.chunks.map((_, i) => ({ sid: f.sid, i })))
  queue.reverse() // taken from the end: pop() is O(1) where shift() is O(n)
  const worker = async () => {
    for (let c = queue.pop(); c !== undefined; c = queue.pop()) {
      const { sid, i } = c
      const results = await Promise.allSettled(cluster.owners(chunkKey(sid, i)).map(s => s.deleteChunk(sid, i)))
      for (const r of results) {
        if (r.status === 'fulfilled') { if (r.value) deleted++ }
        else {
          leftOver++
          logger.warn({ contentId, sid, index: i, err: (r.reason as Error).message }, 'chunk copy not deleted; the repairer will collect it')
        }
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  manifests.forget(contentId)
  return { contentId, version: m.version, deleted: true, chunkReplicasDeleted: deleted, chunkReplicasLeft: leftOver }
}
