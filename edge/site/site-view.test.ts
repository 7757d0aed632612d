import t from 'tap'
import { ownersOf } from '../../lib/affinity.js'
import { SiteView } from './site-view.js'

const members = [
  { id: 'edge-a', url: 'http://127.0.0.1:1', weight: 1 },
  { id: 'edge-b', url: 'http://127.0.0.1:2', weight: 1 },
  { id: 'edge-c', url: 'http://127.0.0.1:3', weight: 1 },
]
const reply = (extra: object = {}) => ({ site: { id: 's1', members }, hot: [], ...extra })

t.test('a reply naming the site: members, owners by lib/affinity, the peer to ask', async t => {
  const v = new SiteView('s1', () => 'edge-b')
  v.update(reply())
  t.ok(v.active)
  t.equal(v.members.length, 3)
  for (let i = 0; i < 50; i++) {
    const id = `film-${i}`
    const first = ownersOf(id, members, 1)[0]!.id
    t.same(v.owners(id).map(m => m.id), [first], `${id}: one owner, the affinity's first`)
    t.equal(v.owns(id), first === 'edge-b')
    t.equal(v.peerFor(id)?.id, first === 'edge-b' ? undefined : first, 'the first owner is asked, unless it is this edge')
  }
})

t.test('hot titles have their count of owners (capped at the members); the rest one', async t => {
  const v = new SiteView('s1', () => 'edge-a')
  v.update(reply({ hot: [{ contentId: 'hot', owners: 2 }, { contentId: 'hotter', owners: 99 }] }))
  t.equal(v.ownerCount('hot'), 2)
  t.equal(v.ownerCount('hotter'), 3)
  t.equal(v.ownerCount('cold'), 1)
  t.same(v.owners('hot').map(m => m.id), ownersOf('hot', members, 2).map(m => m.id))
  t.ok(v.owns('hotter'), 'every edge owns a title hot enough')
})

t.test('an old router, another site, a reply without this edge: no site (peer fill off, prefill alone)', async t => {
  const v = new SiteView('s1', () => 'edge-a')
  for (const r of [undefined, null, 'ok', {}, { status: 'ok' }, { site: null }, { site: { id: 's2', members } },
    { site: { id: 's1', members: 'x' } }, { site: { id: 's1', members: members.filter(m => m.id !== 'edge-a') } }]) {
    v.update(reply())
    t.ok(v.active)
    v.update(r)
    t.notOk(v.active, `${JSON.stringify(r)}: no site`)
    t.ok(v.owns('anything'), 'an edge alone owns everything')
    t.equal(v.peerFor('anything'), undefined)
  }
  const none = new SiteView('', () => 'edge-a')
  none.update(reply())
  t.notOk(none.active, 'an edge that declared no site ignores a site in the reply')
})

t.test('entries that do not parse are dropped one by one, said once', async t => {
  const warned: unknown[] = []
  const logger = { warn: (o: unknown) => warned.push(o) } as never
  const v = new SiteView('s1', () => 'edge-a', logger)
  const bad = [...members, { id: 'bad id!', url: 'http://x' }, { id: 'edge-d', url: 'ftp://x' }, { id: 'edge-a', url: 'http://dup' },
    { id: 'edge-e', url: 'http://127.0.0.1:5', weight: -3 }]
  v.update({ site: { id: 's1', members: bad }, hot: [{ contentId: '../x', owners: 2 }, { contentId: 'ok', owners: 0 }, { contentId: 'fine', owners: 2 }] })
  t.same(v.members.map(m => m.id), ['edge-a', 'edge-b', 'edge-c', 'edge-e'])
  t.equal(v.member('edge-e')!.weight, 1, 'a weight that is not positive counts as 1 (the contract)')
  t.equal(v.ownerCount('fine'), 2)
  t.equal(v.ownerCount('ok'), 1)
  v.update({ site: { id: 's1', members: bad } })
  t.equal(warned.length, 1, 'logged once')
})

t.test('the siblings of a hot title\'s owners spread their requests over those owners', async t => {
  const many = Array.from({ length: 12 }, (_, i) => ({ id: `edge-${i}`, url: `http://127.0.0.1:${i + 1}`, weight: 1 }))
  const owners = ownersOf('hot', many, 3).map(m => m.id)
  const asked = new Map<string, number>()
  for (const m of many) {
    if (owners.includes(m.id)) continue
    const v = new SiteView('s1', () => m.id)
    v.update({ site: { id: 's1', members: many }, hot: [{ contentId: 'hot', owners: 3 }] })
    const p = v.peerFor('hot')!.id
    t.ok(owners.includes(p), `${m.id} asks an owner`)
    t.equal(v.peerFor('hot')!.id, p, 'always the same one')
    asked.set(p, (asked.get(p) ?? 0) + 1)
  }
  t.ok(asked.size >= 2, `the 9 siblings ask more than one of the 3 owners: ${JSON.stringify([...asked])}`)
})

t.test('a hot title\'s later owners ask its first owner (one copy from the origin per site); the first owner asks nobody', async t => {
  const many = Array.from({ length: 6 }, (_, i) => ({ id: `edge-${i}`, url: `http://127.0.0.1:${i + 1}`, weight: 1 }))
  const owners = ownersOf('hot', many, 3).map(m => m.id)
  for (const [i, id] of owners.entries()) {
    const v = new SiteView('s1', () => id)
    v.update({ site: { id: 's1', members: many }, hot: [{ contentId: 'hot', owners: 3 }] })
    t.ok(v.owns('hot'), `${id} owns it`)
    t.equal(v.peerFor('hot')?.id, i === 0 ? undefined : owners[0], i === 0 ? 'the first owner fills from the origin' : `owner ${i + 1} asks the first`)
  }
})
