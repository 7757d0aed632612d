import t from 'tap'
import { EdgeRegistry, parseHeartbeat, type Heartbeat } from './edge-registry.js'

const hb = (id: string, over: Partial<Heartbeat> = {}): Heartbeat => ({
  id, url: `http://${id}.example:8080`, networks: [], regions: [], healthy: true, load: 0.5, freeBytes: 1e12, ...over })

t.test('edges serving the client network come first, then the less loaded', async t => {
  const r = new EdgeRegistry(30_000)
  r.heartbeat(hb('far-idle', { load: 0.1 }), 0)
  r.heartbeat(hb('far-busy', { load: 0.9 }), 0)
  r.heartbeat(hb('isp-a', { networks: ['198.51.100.0/24'], load: 0.8 }), 0)
  r.heartbeat(hb('isp-a2', { networks: ['198.51.100.0/24', '2001:db8::/32'], load: 0.3 }), 0)
  r.heartbeat(hb('de', { regions: ['DE'], load: 0.2 }), 0)
  t.same(r.rank({ ip: '198.51.100.7' }, 1000, 10).map(e => e.id), ['isp-a2', 'isp-a', 'far-idle', 'de', 'far-busy'])
  t.same(r.rank({ ip: '::ffff:198.51.100.7' }, 1000, 2).map(e => e.id), ['isp-a2', 'isp-a'], 'v4-mapped address, limit')
  t.same(r.rank({ ip: '2001:db8::5' }, 1000, 1).map(e => e.id), ['isp-a2'])
  t.same(r.rank({ ip: '203.0.113.1', region: 'DE' }, 1000, 2).map(e => e.id), ['de', 'far-idle'], 'explicit region')
})

t.test('an unhealthy or silent edge is not offered, and comes back with its next heartbeat', async t => {
  const r = new EdgeRegistry(30_000)
  r.heartbeat(hb('a'), 0)
  r.heartbeat(hb('b', { healthy: false }), 0)
  t.same(r.rank({}, 30_000, 10).map(e => e.id), ['a'])
  t.same(r.rank({}, 30_001, 10), [], 'silent past 30 s')
  r.heartbeat(hb('a'), 40_000)
  t.same(r.rank({}, 40_000, 10).map(e => e.id), ['a'])
  t.equal(r.list(40_000).length, 2)
})

t.test('heartbeats are validated by field', async t => {
  t.throws(() => parseHeartbeat({ ...hb('a'), networks: ['10.0.0.0/99'] }), /networks\.0: a CIDR/)
  t.throws(() => parseHeartbeat({ ...hb('a'), url: 'ftp://x' }), /url/)
  t.throws(() => parseHeartbeat({ ...hb('a/../b') }), /id/)
  t.ok(parseHeartbeat(hb('a')))
})

t.test('peers: the most recent heartbeat of an edge wins, only own heartbeats are served, by age', async t => {
  const a = new EdgeRegistry(30_000)
  const b = new EdgeRegistry(30_000)
  a.heartbeat(hb('e1', { load: 0.1 }), 1000)
  t.same(a.own(1500).map(e => [e.id, e.ageMs]), [['e1', 500]])
  // b's clock is far from a's: only the age crosses
  for (const e of a.own(1500)) {
    const { ageMs, ...h } = e
    t.equal(b.mergePeer(h, 900_000 - ageMs), true)
  }
  t.same(b.rank({}, 900_000, 10).map(e => e.id), ['e1'], 'b steers to an edge that heartbeats to a')
  t.same(b.own(900_000), [], 'b does not serve what it learnt from a peer: no echo')
  t.equal(b.mergePeer(hb('e1', { load: 0.9 }), 899_000), false, 'an older heartbeat does not replace a newer one')
  b.heartbeat(hb('e1', { healthy: false }), 900_100)
  t.equal(b.mergePeer(hb('e1'), 900_050), false, 'nor an older peer heartbeat a direct one')
  t.same(b.rank({}, 900_200, 10), [], 'the newer, direct farewell holds')
  t.same(b.own(900_200).map(e => e.id), ['e1'], 'and is served to peers')
  t.same(b.rank({}, 930_101, 10), [])
})

t.test('counts by state: live, unhealthy by its own word, silent past silenceMs after a healthy word, gone after a farewell', async t => {
  const r = new EdgeRegistry(30_000)
  t.same(r.counts(0), { live: 0, unhealthy: 0, silent: 0, gone: 0 })
  r.heartbeat(hb('a'), 0)
  r.heartbeat(hb('b', { healthy: false }), 0)
  r.heartbeat(hb('c'), 10_000)
  t.same(r.counts(30_000), { live: 2, unhealthy: 1, silent: 0, gone: 0 })
  t.same(r.counts(35_000), { live: 1, unhealthy: 0, silent: 1, gone: 1 }, 'a lost without a word, b quiet after saying it was unhealthy')
  r.heartbeat(hb('a'), 36_000)
  t.same(r.counts(36_000), { live: 2, unhealthy: 0, silent: 0, gone: 1 }, 'a back with its next heartbeat')
})
