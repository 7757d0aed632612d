import t from 'tap'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { EDGE_TOKEN, TestCluster, TOKEN_KEYS } from './harness.js'
import { get, metric, settled, startTestEdge, until } from '../helpers/edge.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'

/**
 * Prefill at a real edge filling from a real router: the plan (dry run), the
 * byte budget and rate cap (measured), the admission check, and the point of
 * it all: after a pass, a player's first read of a prefilled opening is a hit.
 * Pausing for players uses a fake upstream, whose barriers hold a player's fill.
 */
const CS = 65536
const ADMIN = 'edge-admin'
const slices = (at: Record<number, number>) => Array.from({ length: 20 }, (_, i) => at[i] ?? 0)

async function demand(c: TestCluster, titles: { contentId: string; plays: number; slices?: number[] }[]) {
  const res = await request(`${c.url}/v1/demand`, { method: 'POST', body: JSON.stringify({ edgeId: 'reporter', titles }),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${EDGE_TOKEN}` } })
  await res.body.dump()
  if (res.statusCode !== 200) throw new Error(`demand report answered ${res.statusCode}`)
}

async function admin(url: string, method = 'GET') {
  const res = await request(url, { method, headers: { authorization: `Bearer ${ADMIN}` } })
  return { status: res.statusCode, json: await res.body.json() as any }
}

t.test('a pass fills the openings of many titles before the endings of a few, within budget and rate; the first play is then a hit', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const bodies = new Map<string, Buffer>()
  for (const id of ['pop-0', 'pop-1', 'pop-2', 'pop-3', 'pop-4', 'finale']) {
    bodies.set(id, randomBytes(CS * 10))
    await c.ingest(id, bodies.get(id)!)
  }
  // five titles watched from their openings, one watched at its end by a few
  await demand(c, [
    ...[0, 1, 2, 3, 4].map(i => ({ contentId: `pop-${i}`, plays: 10, slices: slices({ 0: 10 }) })),
    { contentId: 'finale', plays: 3, slices: slices({ 18: 10 }) },
  ])
  const rate = 0.5 // MB/s
  const budget = 5 * CS + 1000
  const edge = await startTestEdge(t, { url: c.url, token: undefined },
    { 'edge.prefill.rateMBps': rate, 'edge.prefill.budgetBytes': budget, 'edge.prefill.quietMs': 0 }, { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  t.equal((await request(`${edge.url}/v1/prefill`)).statusCode, 401, 'admin only')

  const dry = await admin(`${edge.url}/v1/prefill`)
  t.equal(dry.status, 200)
  t.same(dry.json.plan.chunks.map((x: any) => `${x.contentId}/${x.index}`), ['pop-0/0', 'pop-1/0', 'pop-2/0', 'pop-3/0', 'pop-4/0'],
    'openings of the many first; the ending of the few does not fit the budget')
  t.equal(dry.json.plan.bytes, 5 * CS)
  t.equal(await metric(edge.url, 'reelcdn_edge_upstream_bytes_total'), 0, 'a dry run fetches nothing')

  t.equal((await admin(`${edge.url}/v1/prefill/start`, 'POST')).status, 202)
  await until(() => edge.prefill.progress?.endedAt != null, 'the pass to end')
  const p = edge.prefill.progress!
  t.equal(p.result, 'done')
  t.equal(await metric(edge.url, 'reelcdn_edge_prefill_bytes_total'), 5 * CS, 'fetched exactly the plan')
  t.ok(await metric(edge.url, 'reelcdn_edge_prefill_bytes_total') <= budget, 'within the budget')
  const secs = (Date.parse(p.endedAt!) - Date.parse(p.startedAt!)) / 1000
  const measured = (5 * CS) / 1e6 / secs
  t.ok(measured <= rate * 1.02, `measured ${measured.toFixed(3)} MB/s over ${secs.toFixed(2)} s, cap ${rate} MB/s`)
  t.equal(await metric(edge.url, 'reelcdn_edge_prefill_window_bytes'), 5 * CS)

  // a second pass has nothing left in this window's budget
  edge.prefill.start()
  await until(() => edge.prefill.progress?.endedAt != null, 'the second pass to end')
  t.equal(edge.prefill.progress!.fetchedBytes, 0)

  const upBefore = await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'chunk' })
  const first = await get(`${edge.url}/v1/content/pop-3`, { range: 'bytes=0-9999' })
  t.equal(first.status, 206)
  t.same(first.body, bodies.get('pop-3')!.subarray(0, 10000))
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'miss' }), 0, 'the first play of a prefilled opening is no miss')
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' }), 1, 'it is a disk hit')
  t.ok(await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'chunk' }) >= upBefore)
  await settled(edge)
})

t.test('prefill never evicts a chunk hotter than the one it brings in', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  await c.ingest('hot', randomBytes(CS * 2))
  await c.ingest('cold', randomBytes(CS * 2))
  const edge = await startTestEdge(t, { url: c.url, token: undefined },
    { 'edge.ramBytes': 0, 'edge.diskBytes': 2 * CS, 'edge.prefill.quietMs': 0, 'edge.readaheadChunks': 0 }, { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  for (const i of [0, 1]) t.equal((await get(`${edge.url}/v1/content/hot`, { range: `bytes=${i * CS}-${i * CS}` })).status, 206)
  await until(() => edge.cache.disk.stats().entries === 2, 'the hot chunks on disk')
  await demand(c, [{ contentId: 'hot', plays: 100, slices: slices({ 0: 10, 10: 10 }) }, { contentId: 'cold', plays: 1, slices: slices({ 0: 1, 10: 1 }) }])
  const { done } = edge.prefill.start()
  await done
  t.equal(edge.prefill.progress!.refused, 2, 'both cold chunks refused')
  t.equal(await metric(edge.url, 'reelcdn_edge_prefill_chunks_total', { result: 'refused' }), 2)
  t.equal(await metric(edge.url, 'reelcdn_edge_prefill_bytes_total'), 0)
  t.equal(edge.cache.disk.stats().entries, 2)
  // now the cold title is the one in demand: its chunks may replace the no-longer-watched ones
  await demand(c, [{ contentId: 'cold', plays: 1000, slices: slices({ 0: 10, 10: 10 }) }])
  await edge.prefill.start().done
  t.equal(edge.prefill.progress!.doneChunks, 2, 'colder victims are evicted for hotter chunks')
  await settled(edge)
})

t.test('prefill pauses while a player fill is in flight and resumes once players are quiet', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const hot = titleBytes(CS * 2, 'hot')
  await up.addTitle('hot', hot, { chunkSize: CS })
  await up.addTitle('a', titleBytes(CS * 2, 'a'), { chunkSize: CS })
  await up.addTitle('b', titleBytes(CS * 2, 'b'), { chunkSize: CS })
  up.trending = { titles: [{ contentId: 'a', plays: 5 }, { contentId: 'b', plays: 4 }] }
  const edge = await startTestEdge(t, { url: up.url, token: undefined }, { 'edge.prefill.quietMs': 300, 'edge.readaheadChunks': 0 })
  up.hold('hot', 0, 1000)
  const player = get(`${edge.url}/v1/content/hot`, { range: 'bytes=0-99999' })
  await up.held('hot', 0)
  const { done } = edge.prefill.start()
  await until(() => edge.prefill.state === 'paused', 'prefill to pause')
  t.equal(await metric(edge.url, 'reelcdn_edge_prefill_paused'), 1)
  t.equal(up.requests('a') + up.requests('b'), 0, 'no prefill fetch while the player\'s fill runs')
  up.release('hot', 0)
  const r = await player
  t.same(r.body, hot.subarray(0, 100000), 'the player got its bytes')
  await done
  t.equal(edge.prefill.progress!.result, 'done')
  t.ok(edge.prefill.progress!.pauses >= 1)
  t.equal(up.requests('a'), 2, 'then prefill fetched its plan')
  t.equal(up.requests('hot'), 2, 'the player\'s title only by the player')
  await settled(edge)
})

t.test('the edge counts sessions and chunk reads, reports them, and registers with the router', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBytes(CS * 4)
  await c.ingest('watched', body)
  // with the token keys: the play token counts as a session once it verifies (edge/serve/play-auth.ts demandSession)
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.networks': ['127.0.0.0/8'], 'edge.id': 'edge-test' },
    { REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS })
  t.ok(await edge.reporter.sendHeartbeat())
  const play = await (await request(`${c.url}/v1/play/watched`)).body.json() as { urls: { id: string; url: string }[] }
  t.same(play.urls.map(u => u.id), ['edge-test', 'origin'])
  // one session (one token), three reads; a second session from the same address without a token
  for (const r of ['bytes=0-9', `bytes=${CS}-${CS + 9}`, `bytes=${3 * CS}-${3 * CS + 9}`]) await get(play.urls[0]!.url, { range: r })
  await get(`${edge.url}/v1/content/watched`, { range: 'bytes=0-9' })
  await get(`${edge.url}/v1/content/watched`, { range: 'bytes=10-19' })
  t.ok(await edge.reporter.sendReport())
  const top = await (await request(`${c.url}/v1/trending?window=5m&positions=1`)).body.json() as any
  t.equal(top.titles[0].contentId, 'watched')
  t.equal(top.titles[0].plays, 2, 'plays are sessions, not requests')
  t.equal(top.titles[0].positions[0], 0.6, 'three of five chunk reads at the opening')
  await settled(edge)
})
