import t from 'tap'
import { createLogger } from '../../lib/logger.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { logSink } from '../helpers/origin.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, settled, startTestEdge, type TestContext } from '../helpers/edge.js'

/**
 * Issue 14, item 5, review: a fill asks the router for its chunk's block list
 * (`/crcs`) to release bytes block by block, and releases nothing until that
 * list arrives or fails. The request had no timeout of its own (only the
 * upstream's 10 s headers timeout) and no retry, and each failing fill logged
 * a warning. Now it has `edge.blockListTimeoutMs` (1 s) and one retry, the fill
 * falls back to the whole-chunk rule when both fail, and the warning comes
 * once per upstream per minute, every failure counted in
 * `reelcdn_edge_block_list_failures_total{reason}`.
 */
const CS = 1024 * 1024
const N = 3

async function setup(t: TestContext) {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(N * CS, 'listed')
  await up.addTitle('listed', bytes, { chunkSize: CS, blocks: true })
  const sink = logSink()
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.upstreamHeadersTimeoutMs': 30_000, 'edge.fillTimeoutMs': 30_000 },
    {}, createLogger('edge', 'info', sink))
  // the tail of each chunk, all at once: three fills, each asking for its block list
  const tails = () => Promise.all(Array.from({ length: N }, (_, i) =>
    Promise.race([
      get(`${edge.url}/v1/content/listed`, { range: `bytes=${(i + 1) * CS - 100}-${(i + 1) * CS - 1}` }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 6 s')), 6000).unref()),
    ])))
  const warnings = () => sink.lines.filter(l => l.level === 40 && /block list/.test(l.msg))
  const failures = (reason?: string) => metric(edge.url, 'reelcdn_edge_block_list_failures_total', reason ? { reason } : {})
  return { up, bytes, edge, tails, warnings, failures }
}

t.test('block lists that never come: each asked twice, 1 s apart, then the fills go on without them; one warning', async t => {
  const { up, bytes, edge, tails, warnings, failures } = await setup(t)
  up.crcsFault({ hang: true })
  const started = performance.now()
  const got = await tails()
  const secs = (performance.now() - started) / 1000
  for (const [i, r] of got.entries()) t.ok(r.status === 206 && r.body.equals(bytes.subarray((i + 1) * CS - 100, (i + 1) * CS)), `tail of chunk ${i} served, byte-exact`)
  t.ok(secs < 4, `within two block-list timeouts and the fill (${secs.toFixed(2)} s)`)
  t.equal(up.crcsLog.length, 2 * N, 'one retry each')
  t.equal(await failures('timeout'), N, 'every failure counted')
  t.equal(warnings().length, 1, 'one warning for the upstream, not one per fill')
  t.match(warnings()[0]?.msg, /block list/)
  await settled(edge)
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failures_total'), 0, 'no fill failed')
})

t.test('a block list refused once (503) is had on the retry: no fallback, no warning', async t => {
  const { up, bytes, tails, warnings, failures } = await setup(t)
  up.crcsFault({ status: 503, times: 1 })
  const got = await tails()
  for (const [i, r] of got.entries()) t.ok(r.status === 206 && r.body.equals(bytes.subarray((i + 1) * CS - 100, (i + 1) * CS)), `tail of chunk ${i}`)
  t.equal(up.crcsLog.length, N + 1, 'the refused one asked again')
  t.equal(await failures(), 0)
  t.same(warnings(), [])
})

t.test('a router without block lists (404) is not asked twice', async t => {
  const { up, tails, warnings, failures } = await setup(t)
  up.crcsFault({ status: 404 })
  const got = await tails()
  t.same(got.map(r => r.status), Array(N).fill(206))
  t.equal(up.crcsLog.length, N)
  t.equal(await failures('not_found'), N)
  t.equal(warnings().length, 1)
})
