import t from 'tap'
import { EdgeRegistry, HeartbeatRefusedError, parseHeartbeat, type Heartbeat } from './edge-registry.js'

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

t.test('issue 17: a site and a capacity are taken; absurd capacities and loads are refused naming the field', async t => {
  const ok = parseHeartbeat({ ...hb('a'), site: 'paris-1', capacityBytes: 2e12, freeBytes: 1e12 })
  t.equal(ok.site, 'paris-1')
  t.equal(ok.capacityBytes, 2e12)
  t.ok(parseHeartbeat(hb('old')), 'an edge from before issue 17 sends neither')
  const refused = (over: Record<string, unknown>) => {
    try {
      parseHeartbeat({ ...hb('a'), ...over })
      return undefined
    } catch (err) {
      return err as HeartbeatRefusedError
    }
  }
  for (const [over, reason, msg] of [
    [{ capacityBytes: -1 }, 'capacityBytes', /capacityBytes: at least 0/],
    [{ capacityBytes: 1.5 }, 'capacityBytes', /capacityBytes: a whole number/],
    [{ capacityBytes: 1e18 }, 'capacityBytes', /capacityBytes: at most 1 PiB/],
    [{ capacityBytes: '1TB' }, 'capacityBytes', /capacityBytes/],
    [{ load: 1e6 }, 'load', /load: from 0 \(idle\) to 10/],
    [{ load: -0.5 }, 'load', /load: from 0/],
    [{ freeBytes: 1e300 }, 'freeBytes', /freeBytes: at most 1 PiB/],
    [{ freeBytes: 2e12, capacityBytes: 1e12 }, 'freeBytes', /freeBytes: cannot exceed capacityBytes/],
    [{ site: 'Paris 1' }, 'site', /site: a site is 1-64 characters/],
    [{ extra: 1 }, 'body', /unrecognized/i],
  ] as const) {
    const err = refused(over)
    t.ok(err instanceof HeartbeatRefusedError, JSON.stringify(over))
    t.equal(err?.statusCode, 400)
    t.equal(err?.reason, reason)
    t.match(err?.message, msg)
  }
})

t.test('issue 17: a site lists its live members with their weights; capacity 0 or none weighs 1', async t => {
  const r = new EdgeRegistry(30_000)
  r.heartbeat(parseHeartbeat({ ...hb('a'), site: 's1', capacityBytes: 5e12 }), 0)
  r.heartbeat(parseHeartbeat({ ...hb('b'), site: 's1', capacityBytes: 0, freeBytes: 0 }), 0)
  r.heartbeat(parseHeartbeat({ ...hb('c'), site: 's1', healthy: false }), 0)
  r.heartbeat(parseHeartbeat({ ...hb('d'), site: 's2' }), 0)
  r.heartbeat(hb('e'), 0)
  t.same(r.siteMembers('s1', 10), [{ id: 'a', url: 'http://a.example:8080', weight: 5e12 }, { id: 'b', url: 'http://b.example:8080', weight: 1 }])
  t.same(r.siteMembers('s1', 40_000), [], 'silent: none')
  t.same(r.rank({}, 0).map(e => [e.id, e.weight, e.site]), [['a', 5e12, 's1'], ['b', 1, 's1'], ['d', 1, 's2'], ['e', 1, undefined]])
})

t.test('issue 17: a site\'s member list is kept for a second, and dropped when a member comes, goes or changes', async t => {
  const r = new EdgeRegistry(30_000)
  const s1 = (id: string, over: Partial<Heartbeat> = {}) => parseHeartbeat({ ...hb(id), site: 's1', capacityBytes: 100, freeBytes: 0, ...over })
  r.heartbeat(s1('a'), 0)
  t.same(r.siteMembers('s1', 0).map(m => m.id), ['a'])
  r.heartbeat(s1('b'), 10)
  t.same(r.siteMembers('s1', 10).map(m => m.id), ['a', 'b'], 'a new member at once')
  r.heartbeat(s1('a', { capacityBytes: 300 }), 20)
  t.same(r.siteMembers('s1', 20).map(m => m.weight), [300, 100], 'a new weight at once')
  r.heartbeat(s1('b', { healthy: false }), 30)
  t.same(r.siteMembers('s1', 30).map(m => m.id), ['a'], 'a farewell at once')
  r.heartbeat(s1('b'), 40)
  r.heartbeat(s1('b', { site: 's2' }), 50)
  t.same(r.siteMembers('s1', 50).map(m => m.id), ['a'], 'a member moving to another site')
  t.same(r.siteMembers('s2', 50).map(m => m.id), ['b'])
  // silence: a leaves within the second the list is kept
  r.heartbeat(s1('b', { site: 's2' }), 29_000)
  t.same(r.siteMembers('s1', 30_500).map(m => m.id), [], 'a is silent past 30 s')
})
