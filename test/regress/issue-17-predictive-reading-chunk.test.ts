import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { get, startTestEdge, settled } from '../helpers/edge.js'
import { titleBytes } from '../helpers/titles.js'

/**
 * Found running the steering bench row (issue 17) with the edge's default
 * RAM policy, predictive: one edge at 20 % of a catalog sent 80 % of the
 * bytes it served to the origin again, against 31 % with LRU, on the same
 * players. Players read a chunk in several ranges (the load tester's
 * ~150 kB, Chromium's 32 KiB-aligned ones, hls.js's segments), and the
 * policy's session tracker protected the chunks a session was about to
 * read, not the one it was reading: a chunk of a less popular title,
 * filled for a viewer's first range, scored below the residents and was
 * declined, and the same viewer's next range of it missed and filled it
 * again, once per range.
 */
const KiB = 1024
const CS = 256 * KiB

t.test('predictive: a chunk a viewer is reading stays while it reads it, so its ranges cost one upstream fetch', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const popular = titleBytes(4 * CS, 'popular')
  const cold = titleBytes(4 * CS, 'cold')
  await up.addTitle('popular', popular, { chunkSize: CS })
  await up.addTitle('cold', cold, { chunkSize: CS })
  // RAM for the popular title's four chunks, no disk tier to catch a declined chunk
  const edge = await startTestEdge(t, up, { 'edge.ramBytes': 4 * CS, 'edge.diskBytes': 0, 'edge.readaheadChunks': 0,
    'edge.ramPolicy': 'predictive' })
  // the popular title, watched through five times: many starts, every chunk reached
  for (let pass = 0; pass < 5; pass++) {
    for (let i = 0; i < 4; i++) t.ok((await get(`${edge.url}/v1/content/popular`, { range: `bytes=${i * CS}-${(i + 1) * CS - 1}` })).body.equals(popular.subarray(i * CS, (i + 1) * CS)))
  }
  await settled(edge)
  const before = up.requests('cold')
  // a viewer of the cold title reads its first chunk in four ranges, as players do
  const piece = CS / 4
  for (let p = 0; p < 4; p++) {
    const got = await get(`${edge.url}/v1/content/cold`, { range: `bytes=${p * piece}-${(p + 1) * piece - 1}` })
    t.ok(got.body.equals(cold.subarray(p * piece, (p + 1) * piece)), `range ${p + 1} of the chunk`)
    await settled(edge)
  }
  t.equal(up.requests('cold', 0) - before, 1, 'one upstream fetch for the chunk, not one per range')
})
