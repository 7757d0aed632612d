import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { planResponse, sendPlanned } from '../lib/representation.js'
import { PlayerClient } from './player.js'
import { SequentialReader } from './sequential-reader.js'

/**
 * Test sources: plain servers answering ranges of one Buffer with the shared
 * representation code. `cutAfter` makes one drop every connection once it has
 * sent that many body bytes in total, as a killed edge would.
 */
function source(t: Test, body: Buffer, etag: string, cutAfter = Infinity): Promise<{ url: string; server: Server; served: () => number }> {
  let sent = 0
  const server = createServer((req, res) => {
    const plan = planResponse(req, { size: body.length, etag, lastModified: 0, contentType: 'video/mp4' }, 16)
    void sendPlanned(res, plan, body.length, async (s, e, r) => {
      for (let at = s; at <= e; at += 16384) {
        const piece = body.subarray(at, Math.min(e + 1, at + 16384))
        if (sent + piece.length > cutAfter) {
          r.write(piece.subarray(0, Math.max(0, cutAfter - sent)))
          sent = cutAfter
          r.destroy()
          server.closeAllConnections()
          return
        }
        sent += piece.length
        if (!r.write(piece)) await new Promise(ok => r.once('drain', ok))
      }
    }).catch(() => res.destroy())
  })
  t.teardown(() => new Promise<void>(ok => { server.closeAllConnections(); server.close(() => ok()) }))
  return new Promise(resolve => server.listen(0, '127.0.0.1', () =>
    resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/content/film`, server, served: () => sent })))
}

const body = randomBytes(3 * 1024 * 1024 + 123)

t.test('a read fails over mid-body and resumes at the byte reached', async t => {
  const a = await source(t, body, '"v1"', 1_000_000)
  const b = await source(t, body, '"v1"')
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: a.url }, { url: b.url }] })
  // make the flaky source the first choice whatever the probe timing
  c.sources.sort((x, y) => (x.url === a.url ? -1 : y.url === a.url ? 1 : 0))
  const got = await c.read(0, body.length)
  t.ok(got.equals(body), 'byte-exact')
  t.equal(c.failovers, 1)
  t.ok(a.served() > 0 && a.served() <= 1_000_000, 'the first source sent part of it')
  // the probes at open were HEADs (no body); bytes in flight when the first died are sent again
  t.ok(b.served() < body.length - 500_000, `the second resumed instead of starting over (${b.served()} bytes)`)
})

t.test('sources serving another version are left out; all failing is an error', async t => {
  const a = await source(t, body, '"v1"')
  const other = await source(t, randomBytes(body.length), '"v2"')
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: a.url }, { url: other.url }] })
  t.equal(c.sources.length, 1, 'only sources of the best source\'s version take part')
  t.equal(c.etag, c.sources[0]!.url === a.url ? '"v1"' : '"v2"')
  await t.rejects(PlayerClient.open({ contentId: 'film', urls: [{ url: 'http://127.0.0.1:1/x' }] }), { code: 'CDN_ERR_UPSTREAM' })
})

t.test('discard reads a range, fails over like read, and keeps nothing: the bytes are counted', async t => {
  const a = await source(t, body, '"v1"', 1_000_000)
  const b = await source(t, body, '"v1"')
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: a.url }, { url: b.url }] })
  c.sources.sort((x, y) => (x.url === a.url ? -1 : y.url === a.url ? 1 : 0))
  const received = c.bytesReceived
  await c.discard(100, 2_000_000)
  t.equal(c.failovers, 1, 'the cut source failed over')
  t.equal(c.bytesRead, 2_000_000, 'counted as read')
  t.ok(c.bytesReceived - received >= 2_000_000, 'and as received')
  await t.rejects(c.discard(body.length - 10, 11), RangeError, 'a range past the end')
  for (const [at, n] of [[0, -5], [Number.NaN, 10], [0, 1.5]] as const) await t.rejects(c.discard(at, n), RangeError, `offset ${at}, length ${n}`)
  t.equal(c.bytesRead, 2_000_000, 'none of them counted')
  const out = Buffer.alloc(5000)
  await c.readInto(body.length - 5000, out)
  t.ok(out.equals(body.subarray(body.length - 5000)), 'readInto lands the range in the caller\'s memory')
})

t.test('the sequential reader delivers the title in order across seeks, buffering ahead', async t => {
  const a = await source(t, body, '"v1"')
  const c = await PlayerClient.open({ contentId: 'film', urls: [{ url: a.url }] })
  const r = new SequentialReader(c, { bufferBytes: 512 * 1024, fetchBytes: 128 * 1024 })
  t.teardown(() => r.close())
  const parts: Buffer[] = []
  let n = 0
  while (!r.atEnd) {
    const p = await r.read(1 + ((n++ * 7919) % 200_000))
    parts.push(p)
    t.ok(r.buffered <= 512 * 1024 || t.fail('buffer overran'))
  }
  t.ok(Buffer.concat(parts).equals(body), 'every byte in order')
  t.equal((await r.read(10)).length, 0, 'empty at the end')
  r.seek(2_000_000)
  // what is buffered comes back, up to what is asked: a fetch ends at the ring's end
  const resumed: Buffer[] = []
  for (let got = 0; got < 100_000;) {
    const p = await r.read(100_000 - got)
    resumed.push(p)
    got += p.length
  }
  t.ok(Buffer.concat(resumed).equals(body.subarray(2_000_000, 2_100_000)), 'reads resume at the seek target')
})
