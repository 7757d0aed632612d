import t from 'tap'
import { ownersOf } from '../../lib/affinity.js'
import { startTestEdge } from '../helpers/edge.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { startSite } from '../helpers/site.js'
import { titleBytes } from '../helpers/titles.js'

/**
 * Site-aware prefill (issue 17, docs/peer-fill.md): each edge of a site plans
 * the trending titles it owns there (its first owner, or one of the first k
 * of a hot title), from a trending list as many times longer as the site has
 * edges, so a site's prefill covers N times the titles; an edge alone plans
 * as before.
 */
const CHUNK = 64 * 1024
const TITLES = 12

async function catalog(up: FakeUpstream): Promise<string[]> {
  const ids = Array.from({ length: TITLES }, (_, i) => `t-${i}`)
  for (const id of ids) await up.addTitle(id, titleBytes(CHUNK, id), { chunkSize: CHUNK })
  up.trending = { titles: ids.map((contentId, i) => ({ contentId, plays: 100 - i })) }
  return ids
}

t.test('a site of three edges prefills three times the titles, each title on its owners only', async t => {
  const s = await startSite(t, ['edge-a', 'edge-b', 'edge-c'], { 'edge.prefill.titles': 4 })
  const ids = await catalog(s.up)
  const members = s.members()
  s.view = () => ({ members, hot: [{ contentId: 't-5', owners: 2 }] })
  await s.settled()
  for (const e of s.edges) await until(() => e.site.ownerCount('t-5') === 2)
  const planned = new Map<string, string[]>()
  for (const e of s.edges) {
    const plan = await e.prefill.plan()
    const titles = [...new Set(plan.chunks.map(c => c.contentId))].sort()
    planned.set(e.site.selfId, titles)
    const mine = ids.filter(id => ownersOf(id, members, id === 't-5' ? 2 : 1).some(m => m.id === e.site.selfId)).sort()
    t.same(titles, mine, `${e.site.selfId} plans the titles it owns: ${titles.join(' ')}`)
  }
  const all = [...planned.values()].flat()
  t.same([...new Set(all)].sort(), [...ids].sort(), `all ${TITLES} trending titles are planned at the site (4 per edge alone)`)
  t.equal(all.filter(id => id === 't-5').length, 2, 'the hot title on its two owners')
  t.equal(all.length, TITLES + 1, 'every other title on one edge only')
  t.equal(s.up.metaLog.filter(id => id.startsWith('t-')).length, TITLES + 1, 'manifests fetched only for the titles each edge keeps')
})

t.test('an edge without a site prefills as before: the top of the trending list', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const ids = await catalog(up)
  const edge = await startTestEdge(t, { url: up.url, token: undefined }, { 'edge.prefill.titles': 4 })
  const plan = await edge.prefill.plan()
  t.same([...new Set(plan.chunks.map(c => c.contentId))].sort(), ids.slice(0, 4).sort())
})

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 5000
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for the hot title in every view')
    await new Promise(r => setTimeout(r, 5))
  }
}
