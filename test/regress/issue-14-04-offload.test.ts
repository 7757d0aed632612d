import t from 'tap'
import { request } from 'undici'
import { analyse } from '../../edge/report.js'
import type { LoggedRead } from '../../edge/serve/request-log.js'
import { cacheDelta, parseEdgeCounters } from '../../tools/loadtest/edge-counters.js'
import { progressText } from '../../tools/loadtest/progress.js'
import { renderHtml, type LoadResult } from '../../tools/loadtest/report.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until } from '../helpers/edge.js'

/**
 * Issue 14, item 4: readahead inflated the reported hit ratio. Bytes a player
 * read from a fill another request had started (a readahead, a probe, another
 * player) counted as hits, so a cold edge could report 100 % while it fetched
 * every byte upstream. Now a hit is a byte served from a cache tier (RAM or
 * disk) and nothing else; the origin offload, 1 − upstream bytes / bytes
 * served, stands next to it everywhere (two counters on /metrics, the load
 * tester, `edge report`) and is where sharing a fill shows; and bytes that
 * readahead or prefill fetched and nobody read before they left the cache are
 * counted as waste, by who fetched them.
 */
const CS = 256 * 1024
const ADMIN = 'edge-admin'

async function edgeOn(t: Parameters<typeof startTestEdge>[0], chunks: number, overrides: Record<string, number | string> = {}) {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(chunks * CS, 'offload')
  await up.addTitle('film', bytes, { chunkSize: CS })
  const edge = await startTestEdge(t, { url: up.url, token: undefined }, { 'cluster.chunkSize': CS, ...overrides }, { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  return { up, edge, bytes }
}

const chunk = (i: number) => ({ range: `bytes=${i * CS}-${(i + 1) * CS - 1}` })
const fillsDone = (url: string) => until(async () => (await metric(url, 'reelcdn_edge_fills_in_flight')) === 0, 'fills done')

t.test('bytes joined from a fill in flight are no hits; sharing the fill shows in the offload', async t => {
  const { up, edge, bytes } = await edgeOn(t, 2, { 'edge.readaheadChunks': 0 })
  const url = `${edge.url}/v1/content/film`
  up.hold('film', 0, 1000)
  const first = get(url, chunk(0))
  await up.held('film', 0)
  const second = get(url, chunk(0))
  await until(async () => (await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'coalesced' })) === 1, 'the second read to join the fill')
  up.release('film', 0)
  for (const r of await Promise.all([first, second])) t.ok(r.body.equals(bytes.subarray(0, CS)))
  await fillsDone(edge.url)
  t.ok((await get(url, chunk(0))).body.equals(bytes.subarray(0, CS)), 'a third read, from RAM')
  const text = (await get(`${edge.url}/metrics`)).body.toString()
  const counted = parseEdgeCounters(text)
  t.equal(counted.served, 3 * CS)
  t.equal(counted.hitBytes, CS, 'only the RAM hit is a hit')
  t.equal(counted.upstream, CS)
  const figures = cacheDelta({ served: 0, hitBytes: 0, upstream: 0 }, counted)
  t.equal(figures.byteHitRatio, 1 / 3)
  t.equal(figures.originOffload, 1 - CS / (3 * CS), 'one upstream fetch served three reads')
})

t.test('a chunk readahead fetched and nobody read counts as unread when it leaves the cache', async t => {
  // RAM of two chunks, no disk, LRU: reading chunk 2 (and its readahead, 3) pushes out 0 and 1
  const { edge } = await edgeOn(t, 4, { 'edge.readaheadChunks': 1, 'edge.ramBytes': 2 * CS, 'edge.diskBytes': 0 })
  const url = `${edge.url}/v1/content/film`
  t.equal((await get(url, chunk(0))).status, 206)
  await fillsDone(edge.url)
  t.equal((await get(url, chunk(2))).status, 206)
  await fillsDone(edge.url)
  t.equal((await get(url, chunk(3))).status, 206, 'chunk 3, fetched ahead, is read: no waste')
  t.equal(await metric(edge.url, 'reelcdn_edge_readahead_total', { result: 'started' }), 2, 'readahead fetched chunks 1 and 3')
  t.equal(await metric(edge.url, 'reelcdn_edge_unread_ahead_bytes_total', { by: 'readahead' }), CS, 'chunk 1 left unread')
  t.equal(await metric(edge.url, 'reelcdn_edge_unread_ahead_bytes_total', { by: 'prefill' }), 0)
})

t.test('prefilled chunks purged before any read count as unread, apart from readahead\'s', async t => {
  const { up, edge } = await edgeOn(t, 2, { 'edge.readaheadChunks': 0, 'edge.prefill.quietMs': 0, 'edge.prefill.rateMBps': 0 })
  up.trending = { titles: [{ contentId: 'film', plays: 10, positions: null }] }
  edge.prefill.start()
  await until(() => edge.prefill.progress?.endedAt != null, 'the prefill pass to end')
  const fetched = await metric(edge.url, 'reelcdn_edge_prefill_bytes_total')
  t.ok(fetched > 0, `prefill fetched ${fetched} bytes`)
  const res = await request(`${edge.url}/v1/cache/film`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } })
  await res.body.dump()
  t.equal(res.statusCode, 200)
  t.equal(await metric(edge.url, 'reelcdn_edge_unread_ahead_bytes_total', { by: 'prefill' }), fetched, 'every prefilled byte left unread')
  t.equal(await metric(edge.url, 'reelcdn_edge_unread_ahead_bytes_total', { by: 'readahead' }), 0)
})

t.test('edge report: the hit ratio counts tier hits only, and the offload stands next to it', async t => {
  const reads: LoggedRead[] = [
    { t: 1, key: 'm/0/a', chunkBytes: 10, bytes: 10, result: 'miss', session: 's1' },
    { t: 2, key: 'm/0/a', chunkBytes: 10, bytes: 10, result: 'coalesced', session: 's2' },
    { t: 3, key: 'm/0/a', chunkBytes: 10, bytes: 10, result: 'ram_hit', session: 's3' },
    { t: 4, key: 'm/1/b', chunkBytes: 10, bytes: 10, result: 'disk_hit', session: 's1' },
  ]
  // 20 bytes fetched upstream: chunk 0, and chunk 1 by readahead
  const r = analyse(reads, 100, { sessionHorizon: 4, sessionIdleMs: 60_000 }, 20)
  t.equal(r.ratios.achieved!.byteHitRatio, 0.5, 'the joined read is no hit')
  t.equal(r.ratios.achieved!.offload, 0.5, '1 - 20 upstream / 40 served')
  t.equal(r.ratios.lru!.offload, 0.5, 'simulated: each miss fetches its whole chunk')
  t.equal(analyse(reads, 100, { sessionHorizon: 4, sessionIdleMs: 60_000 }).ratios.achieved!.offload, null, 'unknown without upstream bytes')
})

t.test('the load tester shows the offload next to the hit ratio', async t => {
  t.equal(progressText('players', { elapsedS: 12.4, durationS: 30, active: 7, done: 3, mbps: 41.25, hitRatioSoFar: 0.873, offloadSoFar: 0.5 }),
    'loadtest players 12/30 s  sessions 7 playing, 3 done  41.3 MB/s  hit ratio so far 87.3 %  offload so far 50.0 %')
  const r: LoadResult = { mode: 'http', scenario: 'http', target: 'x', startedAt: '', durationS: 2, generatorCeilingMBps: null,
    timeline: [{ t: 1, mbps: 1, hitRatio: 0.5, hitRatioSoFar: 0.5, offload: 0.25, offloadSoFar: 0.25 }, { t: 2, mbps: 1, hitRatio: 0.7, hitRatioSoFar: 0.6, offload: 0.5, offloadSoFar: 0.4 }],
    cache: { byteHitRatio: 0.6, originOffload: 0.4, edgeBytesServed: 10, upstreamBytes: 6, routerBytesServed: null } }
  const html = renderHtml(r)
  t.match(html, /Byte hit ratio and origin offload at the edges/)
  t.match(html, /offload since start/)
})
