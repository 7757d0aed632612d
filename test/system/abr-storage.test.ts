import t, { type Test } from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { TestCluster, TOKEN, replicas } from './harness.js'
import { ingestLadder, makeLadder, putRendition, segmentRanges } from '../helpers/abr.js'
import { proxyShard } from '../helpers/proxy-shard.js'
import { chunkKey, storageId } from '../../router/cluster/keys.js'
import { parseManifest, type Manifest } from '../../lib/manifest.js'
import type { RepairReport } from '../../router/repair/repair-report.js'

/**
 * Rendition files are stored like titles (docs/abr.md): the repairer knows a
 * ladder's rendition versions, so it restores a lost rendition chunk instead
 * of collecting it, and collects the chunks of a ladder never published
 * once they are older than orphanGraceMs; DELETE removes every rendition's
 * chunks; a read of a rendition fails over block by block like a title's.
 */
const CS = 2 * 65536

const c = await TestCluster.start(t, { chunkSize: CS })
const dir = join(c.dir, 'ladder')
await mkdir(dir, { recursive: true })
const files = await makeLadder(dir)
const bytes = new Map(files.map(f => [f.id, f.bytes]))

async function repair(cl: TestCluster): Promise<RepairReport> {
  const res = await request(`${cl.url}/v1/cluster/repair`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  return await res.body.json() as RepairReport
}

async function manifest(id: string): Promise<Manifest> {
  return parseManifest(JSON.parse((await c.get(`/v1/content/${id}/meta`)).body.toString()))
}

/** Every rendition file, whole and segment by segment, is its bytes. */
async function readsBack(t: Test, id: string): Promise<void> {
  for (const r of (await manifest(id)).renditions!) {
    const file = bytes.get(r.id)!
    t.ok((await c.get(`/v1/content/${id}/${r.id}.mp4`)).body.equals(file), `${id}/${r.id}.mp4`)
    let same = true
    for (const [s, e] of segmentRanges(r)) same &&= (await c.get(`/v1/content/${id}/${r.id}.mp4`, { range: `bytes=${s}-${e}` })).body.equals(file.subarray(s, e + 1))
    t.ok(same, `${id}/${r.id}: every segment`)
  }
}

/** The rendition chunk replicas a ladder has on the shards (as `shard:<sid>/<i>`). */
function held(m: Manifest): string[] {
  const sids = new Set(m.renditions!.map(r => storageId(m.contentId, r.version)))
  return [...replicas(c)].filter(x => sids.has(x.slice(x.indexOf(':') + 1, x.lastIndexOf('/'))))
}

t.test('a shard loses a rendition chunk: the repairer copies it back, and collects no rendition chunk as an orphan', async t => {
  await ingestLadder(c.url, 'kept', files, TOKEN)
  const m = await manifest('kept')
  const all = held(m)
  t.equal(all.length, 3 * m.renditions!.reduce((n, r) => n + r.chunks.length, 0), 'three copies of every rendition chunk')
  const v = m.renditions!.find(r => r.id === 'v180')!
  const sid = storageId('kept', v.version)
  const victim = c.router.cluster.ring.owners(chunkKey(sid, 1))[0]!
  const res = await request(`http://127.0.0.1:${c.ports[Number(victim.split('-')[1]) - 1]}/v1/chunks/${sid}/1`, { method: 'DELETE' })
  t.equal(res.statusCode, 204)
  await res.body.dump()
  t.equal(held(m).length, all.length - 1)
  await readsBack(t, 'kept')
  // every chunk is old enough to collect, were it an orphan
  await c.startRouter(undefined, { 'router.repair.orphanGraceMs': 0 })
  const report = await repair(c)
  t.equal(report.chunks.copied, 1, 'the lost copy made again')
  t.equal(report.chunks.orphans, 0, 'no rendition chunk taken for an orphan')
  t.equal(report.chunks.orphansDeleted, 0)
  t.equal(report.remaining.underReplicated, 0)
  t.same(held(m).sort(), all.sort(), 'every copy back on its owner')
  t.equal(JSON.parse((await c.get('/v1/cluster')).body.toString()).replicas.underReplicated, 0, '/v1/cluster after the pass')
  t.match((await c.get('/metrics')).body.toString(), /reelcdn_router_repair_actions_total\{action="copy",service="router"\} 1/)
})

t.test('a ladder never published: its chunks are orphans, kept through the grace period, then collected', async t => {
  for (const f of files) t.equal((await putRendition(c.url, 'draft', f.id, f.bytes, TOKEN)).status, 200)
  const drafts = () => [...replicas(c)].filter(x => x.includes(':draft.'))
  const n = drafts().length
  t.ok(n > 0)
  await c.startRouter(undefined, { 'router.repair.orphanGraceMs': 3_600_000 })
  const young = await repair(c)
  t.equal(young.chunks.orphans, n / 3, 'counted as orphans')
  t.equal(young.chunks.orphansDeleted, 0, 'younger than the grace period: kept for a publish to come')
  t.equal(drafts().length, n)
  await c.startRouter(undefined, { 'router.repair.orphanGraceMs': 0 })
  const old = await repair(c)
  t.equal(old.chunks.orphansDeleted, n, 'collected once past it')
  t.equal(drafts().length, 0)
  await readsBack(t, 'kept')
})

t.test('DELETE removes the manifest and every rendition\'s chunks', async t => {
  const before = replicas(c).size
  const m = await manifest('kept')
  const n = held(m).length
  const del = await request(`${c.url}/v1/content/kept`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(del.statusCode, 200)
  t.match(await del.body.json(), { deleted: true, chunkReplicasDeleted: n, chunkReplicasLeft: 0 })
  t.equal(held(m).length, 0, 'no rendition chunk left on any shard')
  t.equal(replicas(c).size, before - n)
  t.ok(c.shards.every(s => s!.index.getManifest('kept') === undefined), 'no manifest left')
  for (const path of ['/v1/content/kept/master.m3u8', '/v1/content/kept/v180.mp4', '/v1/content/kept/r/v180/chunks/0'])
    t.equal((await c.get(path)).status, 404, path)
  t.notOk(JSON.parse((await c.get('/v1/content')).body.toString()).items.some((i: any) => i.contentId === 'kept'), 'not listed')
  t.equal((await ingestLadder(c.url, 'kept', files, TOKEN)).publish.status, 201, 'the id takes a ladder again')
})

t.test('a rendition read from an owner that sends a corrupt block moves to the next owner at that block, byte-exact', async t => {
  const m = await manifest('kept')
  const v = m.renditions!.find(r => r.id === 'v180')!
  const sid = storageId('kept', v.version)
  const liarAt = Number(c.router.cluster.ring.owners(chunkKey(sid, 1))[0]!.split('-')[1]) - 1
  const liar = await proxyShard(t, c, liarAt, { corruptAt: 65536 + 99 })
  // the liar is the least loaded owner of chunk 1: asked first
  const from = CS + 65536 + 10
  const part = await c.get('/v1/content/kept/v180.mp4', { range: `bytes=${from}-${from + 70_000}` })
  t.equal(part.status, 206)
  t.ok(part.body.equals(bytes.get('v180')!.subarray(from, from + 70_001)), 'byte-exact')
  t.ok(liar.log.some(l => l.startsWith(`GET /v1/chunks/${sid}/1 `)), 'the liar was asked')
  t.match((await c.get('/metrics')).body.toString(), /reelcdn_router_read_failovers_total\{reason="corrupt",service="router"\} [1-9]/)
  await readsBack(t, 'kept')
})

