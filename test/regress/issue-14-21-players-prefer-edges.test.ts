import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { planResponse, sendPlanned } from '../../lib/representation.js'
import { PlayerClient } from '../../client/player.js'
import { playersMode, type Scenario } from '../../tools/loadtest/players-mode.js'
import { formatSummary } from '../../tools/loadtest/main.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { metric, startTestEdge, until } from '../helpers/edge.js'

/**
 * Issue 14, item 21: players read from the origin as readily as from an edge.
 * The client probed every URL of /v1/play and read from the fastest, so on one
 * machine, where the origin answers as fast as an edge, a quarter of the bytes
 * came from the origin; and its probe was a one-byte GET, which started a
 * whole-chunk fill on a cold edge and counted as a one-byte miss. Now the
 * origin is the last resort: an edge that answers a good probe (a HEAD, which
 * reads no bytes) within the budget is used, in /v1/play order; a read that
 * fails over goes to the next edge before the origin; and the load tester
 * reports the share of player bytes read from the origin.
 */
interface Src { url: string; served: () => number; gets: () => number; release: () => void; server: Server }

/** A source answering ranges of `body`: `delayMs` before every answer, `held` HEADs wait for release(), `failGets` answers GETs 503, `cutAfter` body bytes in total and it drops the connection. */
function source(t: Test, body: Buffer, o: { delayMs?: number; held?: boolean; failGets?: boolean; cutAfter?: number } = {}): Promise<Src> {
  let sent = 0
  let gets = 0
  let release!: () => void
  const gate = o.held ? new Promise<void>(r => { release = r }) : Promise.resolve()
  if (!o.held) release = () => {}
  const server = createServer((req, res) => {
    void (async () => {
      if (o.delayMs) await new Promise(r => setTimeout(r, o.delayMs))
      if (req.method === 'HEAD') await gate
      if (req.method === 'GET') gets++
      if (req.method === 'GET' && o.failGets) {
        res.writeHead(503, { 'content-type': 'text/plain' })
        return void res.end('busy')
      }
      const plan = planResponse(req, { size: body.length, etag: '"v1"', lastModified: 0, contentType: 'video/mp4' }, 16)
      await sendPlanned(res, plan, body.length, async (s, e, r) => {
        for (let at = s; at <= e; at += 16384) {
          const piece = body.subarray(at, Math.min(e + 1, at + 16384))
          if (o.cutAfter !== undefined && sent + piece.length > o.cutAfter) {
            r.write(piece.subarray(0, Math.max(0, o.cutAfter - sent)))
            sent = o.cutAfter
            r.destroy()
            return
          }
          sent += piece.length
          if (!r.write(piece)) await new Promise(ok => r.once('drain', ok))
        }
      })
    })().catch(() => res.destroy())
  })
  t.teardown(() => new Promise<void>(ok => { release(); server.closeAllConnections(); server.close(() => ok()) }))
  return new Promise(resolve => server.listen(0, '127.0.0.1', () =>
    resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/content/film`, served: () => sent, gets: () => gets, release, server })))
}

const body = randomBytes(2 * 1024 * 1024 + 77)

t.test('an edge that answers within the budget is used, though the origin answers sooner', async t => {
  const edge = await source(t, body, { delayMs: 40 })
  const origin = await source(t, body)
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: edge.url, kind: 'edge' }, { url: origin.url, kind: 'origin' }] })
  t.ok((await c.read(0, body.length)).equals(body), 'byte-exact')
  t.equal(origin.served(), 0, 'no byte from the origin')
  t.equal(edge.served(), body.length, 'every byte from the edge, once')
  t.equal(c.bytesFromOrigin, 0)
})

t.test('edges are taken in their /v1/play order, not by probe time', async t => {
  const first = await source(t, body, { delayMs: 40 })
  const second = await source(t, body)
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: first.url, kind: 'edge' }, { url: second.url, kind: 'edge' }] })
  await c.read(0, 1000)
  t.equal(first.served(), 1000)
  t.equal(second.served(), 0)
})

t.test('a read that fails over goes to the next edge before the origin', async t => {
  const a = await source(t, body, { delayMs: 20, cutAfter: 300_000 })
  const b = await source(t, body, { delayMs: 20 })
  const origin = await source(t, body)
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: a.url, kind: 'edge' }, { url: b.url, kind: 'edge' }, { url: origin.url, kind: 'origin' }] })
  t.ok((await c.read(0, body.length)).equals(body), 'byte-exact')
  t.equal(c.failovers, 1)
  t.ok(a.served() > 0, 'the first edge sent part of it')
  t.equal(origin.served(), 0, 'the origin sent nothing: the second edge took over')
})

t.test('the origin is the last resort: used while no edge has answered its probe, left once one has', async t => {
  const edge = await source(t, body, { held: true })
  const origin = await source(t, body)
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: edge.url, kind: 'edge' }, { url: origin.url, kind: 'origin' }] },
    { probeBudgetMs: 50, timeoutMs: 3000 })
  t.equal(c.sources[0]!.url, origin.url, 'no edge answered within the budget: the origin')
  t.ok((await c.read(0, 1000)).equals(body.subarray(0, 1000)))
  t.equal(c.bytesFromOrigin, 1000)
  edge.release()
  await until(() => c.sources[0]!.url === edge.url, 'the edge\'s late answer puts it first')
  t.ok((await c.read(1000, 5000)).equals(body.subarray(1000, 6000)))
  t.equal(edge.served(), 5000, 'the next read came from the edge')
  t.equal(c.bytesFromOrigin, 1000)
})

t.test('no edge answering at all: the origin serves', async t => {
  const origin = await source(t, body)
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: 'http://127.0.0.1:1/v1/content/film', kind: 'edge' }, { url: origin.url, kind: 'origin' }] })
  t.ok((await c.read(0, 100)).equals(body.subarray(0, 100)))
  t.equal(c.bytesFromOrigin, 100)
})

t.test('the probe reads no bytes: on a cold edge it starts no fill and counts no player read', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(3 * 256 * 1024, 'probe')
  await up.addTitle('film', bytes, { chunkSize: 256 * 1024 })
  const edge = await startTestEdge(t, { url: up.url, token: undefined }, { 'edge.readaheadChunks': 1 })
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: `${edge.url}/v1/content/film`, kind: 'edge' }] })
  t.equal(c.size, bytes.length)
  t.equal(c.bytesReceived, 0, 'the probe carried no body')
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total'), 0, 'no chunk read counted')
  t.equal(await metric(edge.url, 'reelcdn_edge_bytes_served_total'), 0)
  t.equal(up.requests(), 0, 'no chunk fetched upstream')
})

t.test('loadtest players reports the share of player bytes read from the origin', async t => {
  const size = 2 * 1024 * 1024
  const title = titleBytes(size, 'share')
  const edge = await source(t, title, { failGets: true })
  const origin = await source(t, title)
  const scenario: Scenario = { name: 'share', players: 2, arrivalS: 0, zipf: 1, bitrates: [{ bps: 8_000_000, weight: 1 }],
    startupS: 0.2, bufferS: 1, sessionS: 2, completeShare: 1, meanWatchedShare: 1, seekChance: 0, premiereShare: 0 }
  const r = await playersMode({ scenario, titles: [{ contentId: 'film', size }], durationS: 10, speed: 4, seed: 1,
    play: async id => ({ contentId: id, urls: [{ url: edge.url, kind: 'edge' }, { url: origin.url, kind: 'origin' }] }) })
  const p = r.players!
  t.equal(p.failed, 0)
  t.ok(edge.gets() > 0, 'the players tried the edge first')
  t.ok(p.bytesReceived > 0)
  t.equal(p.bytesFromOrigin, p.bytesReceived, 'the edge failed every read: every byte came from the origin')
  t.match(formatSummary(r), /bytes from origin: 100\.0 %/)
})
