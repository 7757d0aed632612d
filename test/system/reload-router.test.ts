import t from 'tap'
import { request } from 'undici'
import { startRouter } from '../../router/main.js'
import { quietLogger } from '../../lib/logger.js'
import { EDGE_TOKEN, TestCluster, TOKEN, TOKEN_KEYS, randomBody } from './harness.js'
import { rangePlayers } from '../helpers/range-players.js'

/**
 * Reloading a running router (router/reload-table.ts): a shard added to and
 * removed from cluster.shards, with a weight, while readers read a title
 * through it with every byte checked; a list the ring cannot place copies on
 * is refused whole, over POST /admin/reload behind the admin token.
 */
const CS = 65536

t.test('a shard added and removed by a reload under readers: no read fails, the ring follows, a bad list is refused', async t => {
  const c = await TestCluster.start(t, { shards: 4, copies: 2 })
  let shards = 3
  let extra: Record<string, unknown> = {}
  await c.router.close()
  c.router = await startRouter(c.config(3), { logger: quietLogger('router'), env: { REELCDN_ROUTER_TOKEN: TOKEN, REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS },
    reload: () => c.config(shards, extra) })
  await c.router.cluster.health.checkAll()
  const body = randomBody(24 * CS - 5)
  t.equal((await c.ingest('film', body)).status, 201)
  const post = async (auth?: string) => {
    const res = await request(`${c.url}/admin/reload`, { method: 'POST', headers: auth ? { authorization: `Bearer ${auth}` } : {} })
    return { status: res.statusCode, json: await res.body.json() as { applied: string[]; restartNeeded: string[]; errors: string[] } }
  }
  const readers = rangePlayers(() => `${c.url}/v1/content/film`, body, { players: 3, maxRequests: 2000, rangeBytes: 3 * CS })
  await readers.progressed(20)

  t.equal((await post()).status, 401, 'no token: 401')
  shards = 4
  extra = { 'cluster.shards': c.ports.map((port, i) => ({ id: `shard-${i + 1}`, url: `http://127.0.0.1:${port}`, weight: i === 3 ? 2 : 1 })) }
  const added = await post(TOKEN)
  t.same(added, { status: 200, json: { ok: true, refused: false, applied: ['cluster.shards'], restartNeeded: [], errors: [] } })
  t.same(c.router.cluster.shards.map(s => s.id), ['shard-1', 'shard-2', 'shard-3', 'shard-4'])
  t.ok(c.router.cluster.ring.points()['shard-4']! > c.router.cluster.ring.points()['shard-1']!, 'the heavier shard has more ring points')
  await readers.progressed(20)

  extra = { 'cluster.shards': [{ id: 'shard-1', url: `http://127.0.0.1:${c.ports[0]}`, weight: 1 }], 'cluster.copies': 2 }
  const bad = await post(TOKEN)
  t.equal(bad.status, 400, 'one shard cannot hold two copies: refused')
  t.match(bad.json.errors.join(' '), /cluster\.copies/, `says why: ${bad.json.errors.join('; ')}`)
  t.equal(c.router.cluster.shards.length, 4, 'the running list stays')

  // shard-4 leaves again: its copies were never made (no repair ran), and reads keep to the three that hold them
  extra = {}
  shards = 3
  const removed = await post(TOKEN)
  t.same(removed.json.applied, ['cluster.shards'])
  await readers.progressed(20)
  await readers.stop()
  t.same(readers.failures, [], `no read failed (${readers.done} reads across two reshards)`)
  t.same(c.router.cluster.shards.map(s => s.id), ['shard-1', 'shard-2', 'shard-3'])
  const view = await (await request(`${c.url}/v1/cluster`)).body.json() as { shards: { id: string }[] }
  t.same(view.shards.map(s => s.id), ['shard-1', 'shard-2', 'shard-3'], '/v1/cluster shows the new list')
})
