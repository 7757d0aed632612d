import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody, replicas } from './harness.js'
import { chunkKey, manifestKey, storageId } from '../../router/cluster/keys.js'
import type { RepairReport } from '../../router/repair/repair-report.js'

/** Repair and rebalancing: exactly `copies` good replicas, on the current owners. */
const CS = 65536
const cli = fileURLToPath(new URL('../../cli.js', import.meta.url))

async function repair(c: TestCluster, dryRun = false): Promise<RepairReport> {
  const res = await request(`${c.url}/v1/cluster/repair${dryRun ? '?dryRun=true' : ''}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  return await res.body.json() as RepairReport
}

async function ingestSome(c: TestCluster, titles: number, chunks: number): Promise<Map<string, { body: Buffer; version: string }>> {
  const out = new Map<string, { body: Buffer; version: string }>()
  for (let i = 0; i < titles; i++) {
    const body = randomBody(chunks * CS - 17)
    const r = await c.ingest(`title-${i}`, body)
    out.set(`title-${i}`, { body, version: r.json.version })
  }
  return out
}

/** Every replica sits on an owner of its key, and every key has exactly `copies`. */
function placementIsExact(c: TestCluster, titles: Map<string, { version: string }>, copies: number): string[] {
  const problems: string[] = []
  const held = replicas(c)
  for (const [id, { version }] of titles) {
    const sid = storageId(id, version)
    const m = c.shards.find(s => s?.index.getManifest(id))!.index.getManifest(id)!
    const n = JSON.parse(m.body).chunks.length
    for (let i = 0; i < n; i++) {
      const owners = c.router.cluster.ring.owners(chunkKey(sid, i))
      const on = [...held].filter(r => r.endsWith(`:${sid}/${i}`)).map(r => r.split(':')[0]!)
      if (on.length !== copies || on.some(s => !owners.includes(s))) problems.push(`${sid}/${i} on ${on.join(',')}, owners ${owners.join(',')}`)
    }
    const mOwners = c.router.cluster.ring.owners(manifestKey(id))
    const mOn = c.shards.map((s, j) => (s?.index.getManifest(id) ? `shard-${j + 1}` : '')).filter(Boolean)
    if (mOn.length !== copies || mOn.some(s => !mOwners.includes(s))) problems.push(`manifest ${id} on ${mOn.join(',')}`)
  }
  return problems
}

t.test('a shard wiped, then `reelcdn router repair` restores every copy', async t => {
  const c = await TestCluster.start(t, { shards: 4, chunkSize: CS })
  const titles = await ingestSome(c, 4, 5)
  const before = replicas(c)
  const onShard2 = [...before].filter(r => r.startsWith('shard-2:')).length
  t.ok(onShard2 > 0)
  await c.stopShard(1)
  await c.startShard(1, { wipe: true })
  t.equal(replicas(c).size, before.size - onShard2, 'the wiped shard holds nothing')

  const dry = await repair(c, true)
  t.equal(dry.chunks.underReplicated, onShard2, 'a dry run counts what is missing')
  t.equal(dry.remaining.underReplicated, onShard2)
  t.equal(JSON.parse((await c.get('/v1/cluster')).body.toString()).replicas.underReplicated, onShard2, '/v1/cluster shows it')
  t.match((await c.get('/metrics')).body.toString(), new RegExp(`reelcdn_router_replica_problems\\{kind="under_replicated",service="router"\\} ${onShard2}`))

  // the CLI, as an operator runs it: its own process, the same config
  const cfg = join(c.dir, 'router.json')
  await writeFile(cfg, JSON.stringify({ cluster: c.config().cluster, log: { level: 'warn' } }))
  const run = await new Promise<{ code: number; out: string; err: string }>(resolve =>
    execFile(process.execPath, [cli, 'router', 'repair', '-c', cfg, '--rate', '0'], { env: { ...process.env, REELCDN_SHARD_TOKEN: '' } },
      (err, out, e) => resolve({ code: err ? Number(err.code) : 0, out, err: e })))
  t.equal(run.code, 0, run.err)
  const report = JSON.parse(run.out) as RepairReport
  t.equal(report.chunks.copied, onShard2, 'every missing copy was made')
  t.ok(report.manifests.copied > 0)
  t.match(run.err, /repair .*done/, 'progress on stderr')
  t.same([...replicas(c)].sort(), [...before].sort(), 'every copy is back where it was')
  t.same(placementIsExact(c, titles, 3), [])
  t.ok(c.shards[1]!.index.stats().corrupt === 0 && c.shards[1]!.index.stats().ok === onShard2)
  for (const [id, { body }] of titles) t.ok((await c.get(`/v1/content/${id}`)).body.equals(body))
})

t.test('a corrupt copy is replaced from a good one; a chunk with no good copy is reported lost', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const titles = await ingestSome(c, 2, 3)
  const [a, b] = [...titles]
  const sidA = storageId(a![0], a![1].version)
  c.shards[0]!.index.setState(sidA, 1, 'corrupt')
  const sidB = storageId(b![0], b![1].version)
  for (const s of c.shards) s!.index.delete(sidB, 2)
  const r = await repair(c)
  t.equal(r.chunks.replaced, 1)
  t.equal(r.chunks.lost, 1, 'the chunk no shard holds')
  t.equal(r.remaining.lost, 1)
  t.equal(c.shards[0]!.index.get(sidA, 1)!.state, 'ok')
  t.ok((await c.get(`/v1/content/${a![0]}`)).body.equals(a![1].body))
})

t.test('a fourth shard added to three: about 1/4 of the replicas move, and only after their new copies exist', async t => {
  const c = await TestCluster.start(t, { shards: 3, chunkSize: CS })
  const titles = await ingestSome(c, 10, 16)
  const total = replicas(c).size
  t.equal(total, 10 * 16 * 3)
  // a fourth shard joins the config; routers restart with it
  await c.startShard(3)
  await c.startRouter(4)
  // before any repair, reads find the copies where they were
  for (const [id, { body }] of titles) t.ok((await c.get(`/v1/content/${id}`)).body.equals(body), `${id} readable mid-rebalance`)

  // the new owner is down: nothing may be deleted anywhere
  await c.stopShard(3)
  const blocked = await repair(c)
  t.same(blocked.unreachable, ['shard-4'])
  t.equal(blocked.chunks.misplacedDeleted, 0, 'no misplaced copy deleted while a new owner lacks its copy')
  t.equal(replicas(c).size, total)
  await c.startShard(3)

  const r = await repair(c)
  const moved = r.chunks.misplacedDeleted / total
  t.comment(`rebalancing 3 -> 4 shards moved ${r.chunks.misplacedDeleted} of ${total} replicas: ${moved.toFixed(4)} (ideal 0.25)`)
  console.log(`# moved-replica fraction: ${moved.toFixed(4)} (${r.chunks.misplacedDeleted}/${total}; ideal 0.25)`)
  t.ok(moved <= 0.25 * 1.25 && moved >= 0.25 / 1.25, `moved fraction ${moved.toFixed(4)} within 1.25x of 1/4`)
  t.equal(r.chunks.copied, r.chunks.misplacedDeleted, 'each move is one copy to the new owner and one delete')
  t.equal(replicas(c).size, total, 'still exactly copies replicas of every chunk')
  t.same(placementIsExact(c, titles, 3), [], 'every replica on an owner')
  t.equal(r.remaining.misplaced, 0)
  const again = await repair(c)
  t.equal(again.chunks.copied + again.chunks.misplacedDeleted + again.manifests.copied, 0, 'a second pass finds nothing to do')
  for (const [id, { body }] of titles) t.ok((await c.get(`/v1/content/${id}`)).body.equals(body))
})

t.test('orphans of an abandoned ingest are collected after the grace period, by the background repairer', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS, overrides: { 'router.repair.orphanGraceMs': 0 } })
  const kept = randomBody(2 * CS)
  await c.ingest('kept', kept)
  // (with no grace at all, a pass running during an ingest would take its chunks for orphans: start it after)
  await c.startRouter(3, { 'router.repair.intervalMs': 20 })
  // chunks no manifest names, as an interrupted ingest leaves them
  c.shards[0]!.index.put({ ...c.shards[0]!.index.page('', -1, 1)[0]!, contentId: 'abandoned.0123456789abcdef', index: 0, createdAt: 0 })
  c.shards[1]!.index.put({ ...c.shards[1]!.index.page('', -1, 1)[0]!, contentId: 'not-ours', index: 3, createdAt: 0 })
  const seen = replicas(c).size
  await new Promise<void>(resolve => {
    const check = () => (c.router.repairer.last?.chunks.orphansDeleted === 2 ? resolve() : setTimeout(check, 10))
    check()
  })
  t.equal(replicas(c).size, seen - 2)
  t.ok((await c.get('/v1/content/kept')).body.equals(kept), 'titles are untouched')
})
