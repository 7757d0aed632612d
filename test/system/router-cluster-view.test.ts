import t from 'tap'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody } from './harness.js'
import { chunkKey, storageId } from '../../router/cluster/keys.js'
import type { RepairReport } from '../../router/repair/repair-report.js'

/**
 * GET /v1/cluster shows shards, health, weights, usage, chunk counts and
 * under-replicated chunks, and /metrics the same counts (issue 3). Every
 * figure is checked against what the shards themselves hold, after one copy
 * of a chunk is deleted, another marked corrupt and a shard stopped.
 */
const CS = 65536

/** The value of the sample of `name` whose labels include every one of `labels`. */
function sample(metrics: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    const inside = line.slice(name.length + 1, line.lastIndexOf('}'))
    if (Object.entries(labels).every(([k, v]) => inside.split(',').includes(`${k}="${v}"`))) return Number(line.split(' ').pop())
  }
  return undefined
}

interface ShardView {
  id: string; url: string; weight: number; points: number; outstanding: number
  health: { up: boolean; since: string; lastCheckAt: string | null; lastError: string | null }
  chunks: { ok: number; corrupt: number } | null
  usage: { storedBytes: number; capacityBytes: number; freeBytes: number; reserveBytes: number } | null
}

t.test('/v1/cluster and /metrics show each shard and the replicas as they are', async t => {
  const c = await TestCluster.start(t, { shards: 3, copies: 2, chunkSize: CS })
  const weights = [1, 2, 3]
  const shards = c.ports.map((port, i) => ({ id: `shard-${i + 1}`, url: `http://127.0.0.1:${port}`, weight: weights[i]! }))
  await c.startRouter(3, { 'cluster.shards': shards })
  const body = randomBody(12 * CS)
  const put = await c.ingest('film', body)
  t.equal(put.status, 201)
  const sid = storageId('film', put.json.version)

  // one copy of chunk 4 deleted at its first owner, through the shard's own API
  const [lost] = c.router.cluster.ring.owners(chunkKey(sid, 4)) as [string]
  const lostAt = Number(lost.split('-')[1]) - 1
  const del = await request(`${shards[lostAt]!.url}/v1/chunks/${sid}/4`, { method: 'DELETE' })
  await del.body.dump()
  t.equal(del.statusCode, 204)
  // and chunk 7's copy on another shard marked corrupt, as a scrub would
  const [rotten] = c.router.cluster.ring.owners(chunkKey(sid, 7)) as [string]
  const rottenAt = Number(rotten.split('-')[1]) - 1
  c.shards[rottenAt]!.index.setState(sid, 7, 'corrupt')

  await c.router.cluster.health.checkAll()
  const dry = await (await request(`${c.url}/v1/cluster/repair?dryRun=true`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).body.json() as RepairReport
  t.equal(dry.remaining.underReplicated, 2, 'the dry run finds the deleted copy and the corrupt one')

  const view = JSON.parse((await c.get('/v1/cluster')).body.toString())
  t.equal(view.copies, 2)
  t.equal(view.chunkSize, CS)
  t.same(view.shards.map((s: ShardView) => s.id), ['shard-1', 'shard-2', 'shard-3'])
  const metrics = (await c.get('/metrics')).body.toString()
  for (let i = 0; i < 3; i++) {
    const s = view.shards[i] as ShardView
    const held = c.shards[i]!.index.stats()
    t.equal(s.url, shards[i]!.url)
    t.equal(s.weight, weights[i], `${s.id}: its weight`)
    t.equal(s.health.up, true, `${s.id}: up`)
    t.ok(s.health.lastCheckAt !== null && s.health.lastError === null)
    t.same(s.chunks, { ok: held.ok, corrupt: held.corrupt }, `${s.id}: chunk counts as the shard holds them (${held.ok} ok, ${held.corrupt} corrupt)`)
    t.equal(s.usage!.storedBytes, held.bytes, `${s.id}: stored bytes`)
    t.ok(s.usage!.capacityBytes > 0 && s.usage!.freeBytes > 0 && s.usage!.freeBytes <= s.usage!.capacityBytes, `${s.id}: disk capacity and free space`)
    t.equal(sample(metrics, 'reelcdn_router_shard_up', { shard: s.id }), 1)
    t.equal(sample(metrics, 'reelcdn_router_shard_chunks', { shard: s.id, state: 'ok' }), held.ok, `${s.id}: ok chunks in /metrics`)
    t.equal(sample(metrics, 'reelcdn_router_shard_chunks', { shard: s.id, state: 'corrupt' }), held.corrupt, `${s.id}: corrupt chunks in /metrics`)
    t.equal(sample(metrics, 'reelcdn_router_shard_stored_bytes', { shard: s.id }), held.bytes)
  }
  // the counts differ where they should: the shard that lost a copy and the one with a corrupt copy
  t.equal(view.shards[rottenAt].chunks.corrupt, 1)
  t.equal(view.shards.reduce((n: number, s: ShardView) => n + s.chunks!.ok + s.chunks!.corrupt, 0), 12 * 2 - 1, 'one replica fewer than 12 chunks x 2 copies')
  // weights 1:2:3 give ring points in about that ratio
  const points = view.shards.map((s: ShardView) => s.points)
  t.ok(points[0] < points[1] && points[1] < points[2], `ring points follow the weights: ${points.join(', ')}`)

  t.match(view.replicas, { underReplicated: 2, lost: 0, misplaced: 0, orphans: 0 }, '/v1/cluster: two chunks short of a good copy')
  t.equal(sample(metrics, 'reelcdn_router_replica_problems', { kind: 'under_replicated' }), 2, 'the same in /metrics')
  t.equal(sample(metrics, 'reelcdn_router_replica_problems', { kind: 'lost' }), 0)

  // a shard stopped: shown down, in both
  await c.stopShard(2)
  await c.router.cluster.health.checkAll()
  const down = JSON.parse((await c.get('/v1/cluster')).body.toString()).shards[2] as ShardView
  t.equal(down.health.up, false, 'shard-3 down')
  t.type(down.health.lastError, 'string')
  t.equal(sample((await c.get('/metrics')).body.toString(), 'reelcdn_router_shard_up', { shard: 'shard-3' }), 0)

  // a repair pass: nothing under-replicated left where it can reach
  await c.startShard(2)
  await c.router.cluster.health.checkAll()
  const fixed = await (await request(`${c.url}/v1/cluster/repair`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).body.json() as RepairReport
  t.equal(fixed.chunks.copied + fixed.chunks.replaced, 2)
  await c.router.cluster.health.checkAll()
  const after = JSON.parse((await c.get('/v1/cluster')).body.toString())
  t.equal(after.replicas.underReplicated, 0)
  t.equal(after.shards.reduce((n: number, s: ShardView) => n + s.chunks!.ok, 0), 24, 'every copy is back, none corrupt')
  t.equal(sample((await c.get('/metrics')).body.toString(), 'reelcdn_router_replica_problems', { kind: 'under_replicated' }), 0)
  t.ok((await c.get('/v1/content/film')).body.equals(body))
})
