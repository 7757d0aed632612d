import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { planResponse, sendPlanned } from '../../lib/representation.js'
import { PlayerClient, type PlayerOptions } from '../../client/player.js'
import { until } from '../helpers/edge.js'

/**
 * Issue 14, item 21 (review): a source's read failure was never forgotten.
 * The client put a source whose read failed behind every working one, by the
 * time it failed, and nothing ever reset that time, so after one failed read
 * from its edge (a restart, a dropped connection) a player read from the
 * origin for the rest of its session. Now a failure marks a source down for a
 * backoff (doubled for each failure in a row, capped), after which it is
 * tried again in its place, and a read it serves clears its failures.
 *
 * The backoff runs on a clock the test moves by hand (the player's `clock`
 * option), so no test waits for it to pass.
 */
interface Src { url: string; gets: () => number; served: () => number }

/** A server answering ranges of `body`, as an edge does; its first `failGets` GETs get a 503. */
function source(t: Test, body: Buffer, failGets = 0): Promise<Src> {
  let gets = 0
  let served = 0
  const server = createServer((req, res) => {
    if (req.method === 'GET' && ++gets <= failGets) {
      res.writeHead(503, { 'content-type': 'text/plain' })
      return void res.end('restarting')
    }
    const plan = planResponse(req, { size: body.length, etag: '"v1"', lastModified: 0, contentType: 'video/mp4' }, 16)
    sendPlanned(res, plan, body.length, async (s, e, r) => {
      served += e - s + 1
      r.end(body.subarray(s, e + 1))
    }).catch(() => res.destroy())
  })
  t.teardown(() => new Promise<void>(ok => { server.closeAllConnections(); server.close(() => ok()) }))
  return new Promise(resolve => server.listen(0, '127.0.0.1', () =>
    resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/content/film`, gets: () => gets, served: () => served })))
}

const body = randomBytes(1024 * 1024)
const PART = 128 * 1024

t.test('after one failed read from its edge the player reads from the origin for a while, then returns to the edge', async t => {
  const edge = await source(t, body, 1)
  const origin = await source(t, body)
  let now = 1_000_000
  const opts: PlayerOptions = { clock: () => now, failureBackoffMs: 2000, maxFailureBackoffMs: 30_000, reportIntervalMs: 0 }
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: edge.url, kind: 'edge' }, { url: origin.url, kind: 'origin' }] }, opts)
  await until(() => c.sources.length === 2, 'the origin\'s probe to answer')
  t.equal(c.sources[0]!.url, edge.url, 'the edge is chosen')

  t.ok((await c.read(0, PART)).equals(body.subarray(0, PART)), 'the first read: byte-exact')
  t.equal(edge.gets(), 1, 'the edge failed it')
  t.equal(c.failovers, 1)
  t.equal(c.bytesFromOrigin, PART, 'the origin served it')

  now += 1000
  t.ok((await c.read(PART, PART)).equals(body.subarray(PART, 2 * PART)))
  t.equal(edge.gets(), 1, 'within the backoff the edge is passed over')
  t.equal(c.bytesFromOrigin, 2 * PART)

  now += 1001
  t.ok((await c.read(2 * PART, PART)).equals(body.subarray(2 * PART, 3 * PART)))
  t.equal(edge.gets(), 2, 'once the backoff has passed the edge is tried again')
  t.equal(edge.served(), PART, 'and serves the read')
  t.equal(c.bytesFromOrigin, 2 * PART, 'nothing more from the origin')
  t.equal(c.sources[0]!.url, edge.url, 'the edge is first again')
  t.same([c.sources[0]!.failures, c.sources[0]!.downUntil], [0, 0], 'its failure is cleared')

  // and it stays there: the rest of the title, with no time passing, from the edge
  t.ok((await c.read(3 * PART, body.length)).equals(body.subarray(3 * PART)))
  t.equal(c.bytesFromOrigin, 2 * PART, 'the rest from the edge')
  t.equal(c.failovers, 1)
})

t.test('an edge that keeps failing is passed over for longer each time, never for good', async t => {
  const edge = await source(t, body, 3)
  const origin = await source(t, body)
  let now = 0
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: edge.url, kind: 'edge' }, { url: origin.url, kind: 'origin' }] },
    { clock: () => now, failureBackoffMs: 2000, maxFailureBackoffMs: 5000, reportIntervalMs: 0 })
  await until(() => c.sources.length === 2, 'the origin\'s probe to answer')
  const tries: number[] = []
  // a read at every second: the edge is tried at 0, 2 (after 2 s down), 6 (4 s) and 11 (the 5 s cap), and serves the fourth time
  for (let s = 0; s <= 12; s++) {
    now = s * 1000
    const before = edge.gets()
    t.ok((await c.read(s * 1000, 1000)).equals(body.subarray(s * 1000, s * 1000 + 1000)))
    if (edge.gets() > before) tries.push(s)
  }
  t.same(tries, [0, 2, 6, 11, 12], 'tried again after 2, 4, then 5 s (the cap), then kept')
  t.equal(c.sources[0]!.url, edge.url)
})
