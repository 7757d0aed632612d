import t from 'tap'
import { Cluster } from './cluster.js'
import { loadConfig } from '../../lib/config/config.js'
import { newRegistry, routerMetrics } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { chunkKey } from './keys.js'

function cluster(t: { teardown(fn: () => unknown): void }, shards: number, copies: number) {
  const config = loadConfig({ env: {}, overrides: {
    'cluster.copies': copies,
    'cluster.shards': Array.from({ length: shards }, (_, i) => ({ id: `s${i + 1}`, url: `http://127.0.0.1:${1 + i}`, weight: 1 })),
  } })
  const c = new Cluster(config, routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }), quietLogger('t'), undefined)
  t.teardown(() => c.close())
  return c
}

t.test('read order: least-loaded healthy owners, then other shards, then down ones', async t => {
  const c = cluster(t, 5, 3)
  const key = chunkKey('x.0000000000000000', 0)
  const ring = c.ring.order(key)
  t.same(c.readOrder(key).map(s => s.id), ring, 'no load, all healthy: ring order')
  const [o1, o2, o3, n1, n2] = ring.map(id => c.shard(id))
  o1!.outstanding = 2
  o2!.outstanding = 1
  t.same(c.readOrder(key).map(s => s.id), [o3!.id, o2!.id, o1!.id, n1!.id, n2!.id], 'owners by outstanding requests')
  for (let i = 0; i < 3; i++) {
    // three failed checks: the default `fall`
    c.health.record(o3!.id, 'down', null)
    c.health.record(n1!.id, 'down', null)
  }
  t.same(c.readOrder(key).map(s => s.id), [o2!.id, o1!.id, n2!.id, o3!.id, n1!.id], 'down shards last, owners first among them')
})

t.test('writeQuorum above copies is refused by name', async t => {
  const config = loadConfig({ env: {}, overrides: { 'router.writeQuorum': 4 } })
  t.throws(() => new Cluster(config, routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }), quietLogger('t'), undefined),
    /expected router\.writeQuorum to be at most cluster\.copies \(3\), got 4/)
})
