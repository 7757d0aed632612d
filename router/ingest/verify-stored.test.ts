import t from 'tap'
import { blockListDigest } from '../../lib/integrity/block-hasher.js'
import type { Cluster } from '../cluster/cluster.js'
import type { StoredFile } from '../cluster/files.js'
import { verifyStored } from './verify-stored.js'

/**
 * The publish check of a big ladder: every chunk on every owner, with at most
 * `concurrency` chunks (so concurrency × copies HEADs) in flight, and no more
 * taken once a problem is found.
 */
const CS = 65536
const SHA = (i: number) => i.toString(16).padStart(64, '0')
const LIST = blockListDigest(Buffer.alloc(4))

function ladder(renditions: number, chunks: number): StoredFile[] {
  return Array.from({ length: renditions }, (_, r) => ({
    contentId: 'big', rid: `v${r}`, sid: `big.${r.toString(16).padStart(16, '0')}`, version: r.toString(16).padStart(16, '0'),
    size: chunks * CS, chunkSize: CS, sha256: SHA(0), chunks: Array.from({ length: chunks }, (_, i) => SHA(i)),
    blocks: Array.from({ length: chunks }, () => LIST), name: `big/v${r}`,
  }))
}

/** Three owners per chunk that answer after a timer; `missing` chunks are on none. */
function fakeCluster(missing: Set<string> = new Set()) {
  const s = { heads: 0, lists: 0, inflight: 0, peak: 0 }
  const shard = (id: string) => ({
    id,
    async chunkHead(sid: string, index: number) {
      s.heads++
      s.inflight++
      s.peak = Math.max(s.peak, s.inflight)
      await new Promise(r => setTimeout(r, 1))
      s.inflight--
      return missing.has(`${sid}/${index}`) ? null : { sha256: SHA(index), size: CS }
    },
    async chunkCrcs() {
      s.lists++
      return Buffer.alloc(4)
    },
  })
  const shards = [shard('shard-1'), shard('shard-2'), shard('shard-3')]
  return { stats: s, cluster: { owners: () => shards } as unknown as Cluster }
}

t.test('16 renditions of 200 chunks: every chunk checked on its three owners, at most concurrency × copies HEADs at once', async t => {
  const { stats, cluster } = fakeCluster()
  const counted: string[] = []
  await verifyStored(cluster, ladder(16, 200), { need: 3, concurrency: 8, count: r => counted.push(r) })
  t.equal(stats.heads, 16 * 200 * 3)
  t.equal(stats.lists, 16 * 200, 'one block list per chunk')
  t.ok(stats.peak <= 8 * 3, `peak ${stats.peak} HEADs in flight`)
  t.ok(stats.peak > 3, 'chunks checked in parallel')
  t.equal(counted.length, 3200)
  t.ok(counted.every(r => r === 'ok'))
})

t.test('a missing chunk stops the check: a few more chunks at most, and the first problem in ladder order is named', async t => {
  const files = ladder(4, 100)
  const { stats, cluster } = fakeCluster(new Set([`${files[1]!.sid}/30`, `${files[1]!.sid}/31`]))
  await t.rejects(verifyStored(cluster, files, { need: 2, concurrency: 4 }),
    { code: 'CDN_ERR_RENDITION_MISSING', statusCode: 409, message: /^rendition v1 chunk 30 \(big\.0000000000000001\/30\) is not stored: held with its digest by 0 of 3 owners, 2 needed/ })
  t.ok(stats.heads <= (100 + 32 + 4) * 3, `${stats.heads / 3} chunks asked, not 400`)
})
