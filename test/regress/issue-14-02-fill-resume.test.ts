import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, settled, startTestEdge, until, type TestContext } from '../helpers/edge.js'
import { TestCluster, randomBody } from '../system/harness.js'

/**
 * Issue 14, item 2: when the upstream (the router) broke off an edge's fill
 * mid-chunk, every player waiting on that fill got a 502 or a cut 206. A fill
 * now asks again for what it lacks, from its last verified byte (the end of
 * the last verified 64 KiB block when the title has block lists), a bounded
 * number of times with backoff, before failing its players; a 404, another
 * version of the title or corrupt bytes are not asked again.
 */
const CS = 1024 * 1024

async function setup(t: TestContext, blocks: boolean, overrides: Record<string, number> = {}) {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(2 * CS, 'resume')
  await up.addTitle('film', bytes, { chunkSize: CS, blocks })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.fillRetryBackoffMs': 10, ...overrides })
  const url = `${edge.url}/v1/content/film`
  const read = (range = `bytes=0-${CS - 1}`) => get(url, { range }).catch((err: Error) => ({ status: 0, headers: {}, body: Buffer.alloc(0), error: err.message }))
  const retries = (reason: string) => metric(edge.url, 'reelcdn_edge_fill_retries_total', { reason })
  return { up, bytes, edge, url, read, retries }
}

for (const blocks of [true, false]) {
  const resumeAt = blocks ? 5 * 65536 : 350_000
  t.test(`a fill the upstream resets mid-chunk resumes from byte ${resumeAt} (${blocks ? 'the last verified block' : 'no block lists: the last byte'}), and every player gets every byte`, async t => {
    const { up, bytes, edge, read, retries } = await setup(t, blocks)
    // the cut comes once the edge has every byte before it: where it resumes is then exact
    up.fault('film', 0, { holdAt: 350_000, resetAt: 350_000, once: true })
    const all = Promise.all([read(), read(), read(`bytes=300000-${CS + 999}`)])
    await up.held('film', 0)
    await until(async () => await metric(edge.url, 'reelcdn_edge_upstream_bytes_total') === 350_000, 'the edge to have the bytes before the cut')
    up.release('film', 0)
    const players = await all
    t.same(players.map(r => r.status), [206, 206, 206], 'no player sees the cut')
    t.ok(players[0]!.body.equals(bytes.subarray(0, CS)), 'byte-exact')
    t.ok(players[2]!.body.equals(bytes.subarray(300_000, CS + 1000)), 'byte-exact, across the chunk boundary')
    t.same(up.log.filter(r => r.index === 0).map(r => r.range), [undefined, `bytes=${resumeAt}-${CS - 1}`], 'the second request asks for the rest only')
    t.equal(await retries('cut'), 1, 'counted')
    await settled(edge)
    t.equal(await metric(edge.url, 'reelcdn_edge_fill_failures_total'), 0)
    t.equal((await read('bytes=0-99')).status, 206)
    t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'ram_hit' }), 1, 'the resumed chunk verified and was cached')
  })
}

t.test('a 502 or 503 of the router\'s own is asked again', async t => {
  const { up, bytes, read, retries } = await setup(t, true)
  up.fault('film', 0, { status: 503, once: true })
  const r = await read()
  t.equal(r.status, 206)
  t.ok(r.body.equals(bytes.subarray(0, CS)))
  t.equal(up.requests('film', 0), 2)
  t.equal(await retries('status'), 1)
})

t.test('resumption is bounded: an upstream that keeps cutting fails the fill after edge.fillRetries', async t => {
  const { up, read, retries } = await setup(t, true, { 'edge.fillRetries': 2 })
  up.fault('film', 0, { resetAt: 100_000 })
  const r = await read()
  t.not(r.status, 206, `the player is told: ${r.status}`)
  t.equal(up.requests('film', 0), 3, 'the first request and two more')
  t.equal(await retries('cut'), 2)
})

t.test('a 404, another version of the title and corrupt bytes are not asked again', async t => {
  await t.test('404', async t => {
    const { up, read } = await setup(t, true)
    t.equal((await read('bytes=0-0')).status, 206) // the manifest is cached
    await up.removeTitle('film')
    const r = await read(`bytes=${CS}-${CS}`)
    t.equal(r.status, 502)
    t.equal(up.requests('film', 1), 1)
  })
  await t.test('another version, found when a cut fill asks again', async t => {
    const { up, read, retries } = await setup(t, true)
    up.fault('film', 0, { holdAt: 2 * 65536, resetAt: 2 * 65536, once: true })
    const player = read()
    await up.held('film', 0)
    await up.addTitle('film', titleBytes(2 * CS, 'resume v2'), { chunkSize: CS, blocks: true, version: 'v2' })
    up.release('film', 0)
    const r = await player
    t.not(r.status, 206, `the player is told: ${r.status}`)
    t.equal(up.requests('film', 0), 2, 'asked again once after the cut, then not after the version change')
    t.equal(await retries('cut'), 1)
  })
  await t.test('corrupt bytes', async t => {
    const { up, edge, read } = await setup(t, true)
    up.fault('film', 0, { corrupt: true, once: true })
    const r = await read()
    t.not(r.status === 206 && r.body.length === CS, true, `never a complete answer (${r.status})`)
    t.equal(up.requests('film', 0), 1)
    t.equal(await metric(edge.url, 'reelcdn_edge_fill_failures_total', { reason: 'digest' }), 1)
  })
})

t.test('a fill never waits past its deadline to ask again', async t => {
  const { up, read, retries } = await setup(t, true, { 'edge.fillRetryBackoffMs': 60_000, 'edge.fillTimeoutMs': 5000 })
  up.fault('film', 0, { resetAt: 100_000, once: true })
  const t0 = performance.now()
  const r = await read()
  t.not(r.status, 206)
  t.ok(performance.now() - t0 < 5000, 'failed at once, not at the deadline')
  t.equal(up.requests('film', 0), 1)
  t.equal(await retries('cut'), 0)
})

t.test('through a real router: a 503 while no shard answers is asked again, and served once the shards are back', async t => {
  const c = await TestCluster.start(t, { chunkSize: 256 * 1024 })
  const body = randomBody(2 * 256 * 1024)
  t.equal((await c.ingest('film', body)).status, 201)
  const edge = await startTestEdge(t, { url: c.url, token: undefined },
    { 'edge.readaheadChunks': 0, 'edge.fillRetries': 5, 'edge.fillRetryBackoffMs': 200 })
  const url = `${edge.url}/v1/content/film`
  t.equal((await get(url, { range: 'bytes=0-0' })).status, 206) // the manifest is cached
  await c.router.manifests.get('film') // and the router's
  for (let i = 0; i < 3; i++) await c.stopShard(i)
  await c.router.cluster.health.checkAll()
  const player = get(url, { range: `bytes=${256 * 1024}-${2 * 256 * 1024 - 1}` })
  await until(async () => await metric(edge.url, 'reelcdn_edge_fill_retries_total') >= 1, 'the edge to ask again after the router\'s failure')
  for (let i = 0; i < 3; i++) await c.startShard(i)
  await c.router.cluster.health.checkAll()
  const r = await player
  t.equal(r.status, 206)
  t.ok(r.body.equals(body.subarray(256 * 1024)), 'byte-exact')
  await settled(edge)
})
