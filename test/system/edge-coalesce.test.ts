import t from 'tap'
import { request } from 'undici'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until, type TestContext } from '../helpers/edge.js'

/**
 * One upstream fetch per missing chunk, whatever the players do, and a clear
 * answer for all of them when that fetch fails. Events are ordered with the
 * fake upstream's barriers (hold/held/release/requested) and the edge's own
 * counters, never with sleeps.
 */
const CS = 256 * 1024

/** True if the response failed: the connection was cut mid-body, or the status is 5xx. */
async function cutOr5xx(p: Promise<{ status: number }>): Promise<boolean> {
  return p.then(r => r.status >= 500, () => true)
}

async function setup(t: TestContext, overrides: Record<string, number | string> = {}) {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(4 * CS, 'coalesce')
  await up.addTitle('hot', bytes, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, ...overrides })
  const reads = (result: string) => metric(edge.url, 'reelcdn_edge_requests_total', { result })
  return { up, bytes, edge, url: `${edge.url}/v1/content/hot`, reads }
}

t.test('100 concurrent cold requests for one chunk cost one upstream fetch', async t => {
  const { up, bytes, url, reads } = await setup(t)
  up.hold('hot', 0, 0) // the upstream answers, then holds the body until released
  const ranges = Array.from({ length: 100 }, (_, i) => (i % 2 ? [0, CS - 1] : [i * 1000, i * 1000 + 4095]) as [number, number])
  const all = ranges.map(([s, e]) => get(url, { range: `bytes=${s}-${e}` }))
  await until(async () => (await reads('miss')) + (await reads('coalesced')) === 100, 'all 100 players to wait on the fill')
  up.release('hot', 0)
  const got = await Promise.all(all)
  got.forEach((r, i) => {
    const [s, e] = ranges[i]!
    if (r.status !== 206 || !r.body.equals(bytes.subarray(s, e + 1))) t.fail(`player ${i}: ${r.status}`)
  })
  t.equal(up.requests('hot', 0), 1, 'exactly one upstream fetch of the chunk')
  t.equal(await reads('miss'), 1)
  t.equal(await reads('coalesced'), 99)
  t.equal((await get(url, { range: 'bytes=0-99' })).status, 206)
  t.equal(await reads('ram_hit'), 1, 'and then it is cached')
  t.equal(up.requests('hot', 0), 1)
})

t.test('a player aborting does not cancel the fill another player waits on', async t => {
  const { up, bytes, edge, url, reads } = await setup(t)
  up.hold('hot', 1, 64 * 1024)
  const leaving = await request(url, { headers: { range: `bytes=${CS}-${2 * CS - 1}` } })
  t.equal(leaving.statusCode, 206, 'headers go out with the first bytes, while the upstream is held')
  const staying = get(url, { range: `bytes=${CS}-${2 * CS - 1}` })
  await until(async () => (await reads('coalesced')) === 1, 'the second player to join')
  leaving.body.destroy()
  await until(async () => (await metric(edge.url, 'reelcdn_http_responses_aborted_total')) === 1, 'the edge to see the first player leave')
  up.release('hot', 1)
  const r = await staying
  t.equal(r.status, 206)
  t.ok(r.body.equals(bytes.subarray(CS, 2 * CS)))
  t.equal(up.requests('hot', 1), 1)
  await get(url, { range: `bytes=${CS}-${CS + 9}` })
  t.equal(await reads('ram_hit'), 1, 'the fill completed and was cached')
})

t.test('a fill failure reaches every waiter as a clear 502 or 504', async t => {
  const three = (url: string, range = 'bytes=0-1000') => Promise.all([0, 1, 2].map(() => get(url, { range })))
  const code = (r: { body: Buffer }) => JSON.parse(r.body.toString()).error.code
  // the fill's first failure is final here: resuming after a cut or timeout is test/regress/issue-14-02-fill-resume
  const once = { 'edge.fillRetries': 0 }

  await t.test('no response headers within upstreamHeadersTimeoutMs: 504', async t => {
    const { up, url } = await setup(t, { ...once, 'edge.upstreamHeadersTimeoutMs': 300 })
    up.fault('hot', 0, { hang: true })
    const rs = await three(url)
    t.same(rs.map(r => r.status), [504, 504, 504])
    t.same(rs.map(code), Array(3).fill('CDN_ERR_UPSTREAM_TIMEOUT'))
    t.equal(up.requests('hot', 0), 1)
  })

  await t.test('a body that stops for upstreamIdleTimeoutMs: 504', async t => {
    const { up, url } = await setup(t, { ...once, 'edge.upstreamIdleTimeoutMs': 300 })
    up.hold('hot', 0, 0)
    const rs = await three(url)
    t.same(rs.map(r => r.status), [504, 504, 504])
    t.equal(up.requests('hot', 0), 1)
  })

  await t.test('no verified chunk within fillTimeoutMs: 504, however busy the upstream looks', async t => {
    const { up, url } = await setup(t, { 'edge.fillTimeoutMs': 300 })
    up.hold('hot', 0, 0)
    const rs = await three(url)
    t.same(rs.map(r => r.status), [504, 504, 504])
    t.match(JSON.parse(rs[0]!.body.toString()).error.message, /fillTimeoutMs/)
  })

  await t.test('a connection reset before the first byte: 502 for all', async t => {
    const { up, url } = await setup(t, once)
    up.fault('hot', 0, { resetAt: 0, once: true })
    const rs = await three(url)
    t.same(rs.map(r => r.status), [502, 502, 502])
    t.same(rs.map(code), Array(3).fill('CDN_ERR_UPSTREAM'))
    t.equal(up.requests('hot', 0), 1)
  })

  await t.test('a reset mid-body cuts the players already served; the next request refills', async t => {
    const { up, bytes, url } = await setup(t, once)
    up.fault('hot', 0, { resetAt: 100 * 1024, once: true })
    t.ok(await cutOr5xx(get(url)), 'the player sees a cut connection (or a 502 if the reset beat its first byte), never a short 200')
    const r = await get(url, { range: `bytes=0-${CS - 1}` })
    t.equal(r.status, 206)
    t.ok(r.body.equals(bytes.subarray(0, CS)))
    t.equal(up.requests('hot', 0), 2)
  })

  await t.test('a chunk the upstream no longer has: 502', async t => {
    const { up, url } = await setup(t)
    t.equal((await get(url, { range: 'bytes=0-0' })).status, 206) // metadata cached
    await up.removeTitle('hot')
    const r = await get(url, { range: `bytes=${CS}-${CS}` })
    t.equal(r.status, 502)
    t.match(JSON.parse(r.body.toString()).error.message, /404/)
  })
})

t.test('corrupt upstream bytes are never cached', async t => {
  const { up, bytes, edge, url, reads } = await setup(t)
  up.fault('hot', 2, { corrupt: true, once: true })
  const range = { range: `bytes=${2 * CS}-${3 * CS - 1}` }
  t.ok(await cutOr5xx(get(url, range)), 'the player reading the whole chunk is cut (or answered 502), never handed a complete bad body')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failures_total', { reason: 'digest' }), 1)
  t.equal(edge.cache.ram.stats().entries, 0)
  await edge.cache.disk.idle()
  t.equal(edge.cache.disk.stats().entries, 0)
  const again = await get(url, range)
  t.equal(again.status, 206)
  t.ok(again.body.equals(bytes.subarray(2 * CS, 3 * CS)), 'refetched, byte-exact')
  t.equal(up.requests('hot', 2), 2)
  await get(url, range)
  t.equal(await reads('ram_hit'), 1)
})
