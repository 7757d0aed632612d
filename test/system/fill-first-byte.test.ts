import t from 'tap'
import { request } from 'undici'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBody } from './harness.js'
import { get, metric, startTestEdge } from '../helpers/edge.js'
import { directCluster, routerProxy } from '../helpers/direct-cluster.js'
import { proxyShard } from '../helpers/proxy-shard.js'
import type { ShardProxy } from '../helpers/shard-proxy.js'

/**
 * A cold miss's first byte (issue 16): what the edge must not wait for in a
 * row. Each test orders the edge's requests with a barrier in a proxy in
 * front of the router (or of the shards); a bounded wait only breaks the deadlock an old order
 * would meet, so that it fails instead of hanging.
 */
const KiB = 1024
const CHUNK = 256 * KiB

t.test('a cold title: one router answer carries its manifest and the grants of the chunk read; the fill uses them, and no /meta is asked', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(3 * CHUNK)
  await c.ingest('cold', body)
  const rp = await routerProxy(t, c.url)
  const asked: string[] = []
  rp.hold = url => { if (url.startsWith('/v1/content/')) asked.push(url) }
  const edge = await startTestEdge(t, { url: rp.url, token: undefined }, { 'cluster.chunkSize': CHUNK })
  const pos = 2 * CHUNK + 1000
  const got = await get(`${edge.url}/v1/content/cold`, { range: `bytes=${pos}-${pos + 9999}` })
  t.equal(got.status, 206)
  t.ok(got.body.equals(body.subarray(pos, pos + 10_000)), 'byte-exact')
  t.match(asked, [/^\/v1\/content\/cold\/fill\/2\?count=\d+&manifest=1$/], `one question to the router: ${asked.join(' | ')}`)
  t.equal(asked.length, 1, 'no /meta, no second grant lookup')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_grant_requests_total', { result: 'router' }), 1)
  t.equal(await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'meta', result: 'ok' }), 1, 'counted as a manifest fetched')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0, 'every byte direct')
  // the title is held now: a read elsewhere in it asks the router for nothing but that chunk's grants (chunk 0, not in the first answer's span)
  const first = await get(`${edge.url}/v1/content/cold`, { range: 'bytes=0-99' })
  t.ok(first.body.equals(body.subarray(0, 100)))
  t.notOk(asked.some(u => u.endsWith('/meta')), 'still no /meta')
})

t.test('the manifest with the grants: a guess past the end gets the manifest alone and a clean 416; a title that does not exist is a 404, asked of /meta once', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(CHUNK)
  await c.ingest('short', body)
  const direct = await request(`${c.url}/v1/content/short/fill/7?count=2&manifest=1`)
  const a = await direct.body.json() as { chunks: unknown[]; manifest: { contentId: string; chunks: string[] } }
  t.equal(direct.statusCode, 200, 'the router: a chunk past the end with manifest=1 is not a 404')
  t.same([a.chunks.length, a.manifest.contentId, a.manifest.chunks.length], [0, 'short', 1], 'the manifest alone')
  const meta = await (await request(`${c.url}/v1/content/short/meta`)).body.json()
  t.same(a.manifest, meta, 'the manifest /meta answers')
  t.equal((await request(`${c.url}/v1/content/short/fill/0?manifest=yes`)).statusCode, 400, 'manifest=yes: a 400 naming it')
  const rp = await routerProxy(t, c.url)
  const asked: string[] = []
  rp.hold = url => { if (url.startsWith('/v1/content/')) asked.push(url) }
  const edge = await startTestEdge(t, { url: rp.url, token: undefined }, { 'cluster.chunkSize': CHUNK })
  const past = await get(`${edge.url}/v1/content/short`, { range: `bytes=${5 * CHUNK}-` })
  t.equal(past.status, 416)
  t.equal(asked.length, 1, `the guess's answer carried the manifest: ${asked.join(' | ')}`)
  const missing = await get(`${edge.url}/v1/content/nope`, { range: 'bytes=0-9' })
  t.equal(missing.status, 404)
  t.same(asked.slice(1).map(u => u.replace(/\?.*/, '')), ['/v1/content/nope/fill/0', '/v1/content/nope/meta'], 'a missing title: /meta says so')
  t.equal((await get(`${edge.url}/v1/content/nope`, { range: 'bytes=0-9' })).status, 404)
  t.equal(asked.length, 3, 'and is remembered as missing')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_grant_requests_total', { result: 'error' }), 0, 'neither is a grant error')
})

t.test('a router that sends no manifest with grants (one from before manifest=1): the cold title\'s grants are asked while /meta is on its way, as before', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(3 * CHUNK)
  await c.ingest('first', randomBody(CHUNK))
  await c.ingest('cold', body)
  const rp = await routerProxy(t, c.url)
  // an older router ignores the parameter: grants without the manifest
  rp.rewrite = url => url.replace('&manifest=1', '')
  const edge = await startTestEdge(t, { url: rp.url, token: undefined }, { 'cluster.chunkSize': CHUNK })
  t.ok((await get(`${edge.url}/v1/content/first`)).body.length === CHUNK, 'a first title: the edge learns the router sends no manifest with grants')
  const events: string[] = []
  let fillAsked!: () => void
  const asked = new Promise<void>(resolve => { fillAsked = resolve })
  rp.hold = async url => {
    if (url.includes('/fill/')) {
      events.push(`grants ${url}`)
      fillAsked()
    } else if (url.endsWith('/meta')) {
      // the manifest's answer waits for the grant lookup
      await Promise.race([asked, sleep(3000)])
      events.push('manifest answered')
    }
  }
  const pos = 2 * CHUNK + 1000
  const got = await get(`${edge.url}/v1/content/cold`, { range: `bytes=${pos}-${pos + 9999}` })
  t.equal(got.status, 206)
  t.ok(got.body.equals(body.subarray(pos, pos + 10_000)), 'byte-exact')
  t.match(events[0], /^grants \/v1\/content\/cold\/fill\/2\?count=\d+$/, `the grants of the chunk read went out first, without manifest=1: ${events.join(' | ')}`)
  t.equal(events[1], 'manifest answered')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0, 'every byte direct')
})

t.test('a read the early lookup guessed wrong (an adaptive title\'s bytes, a range past the end) still gets its clean answer', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(CHUNK)
  await c.ingest('short', body)
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'cluster.chunkSize': CHUNK })
  const past = await get(`${edge.url}/v1/content/short`, { range: `bytes=${5 * CHUNK}-` })
  t.equal(past.status, 416)
  const got = await get(`${edge.url}/v1/content/short`)
  t.ok(got.body.equals(body))
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_grant_requests_total', { result: 'error' }), 0, 'the wrong guess is not an error')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0)
})

t.test('an edge connects to its router before it says ready: the first miss pays no connect (nor undici compiling its parser)', async t => {
  const asked: string[] = []
  const server = http.createServer((req, res) => {
    asked.push(req.url ?? '')
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"alive"}')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  await startTestEdge(t, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: undefined })
  t.same(asked, ['/healthz', '/healthz'], 'the relay\'s connection and the grant lookups\' one, before any player asked')
})

t.test("a cold miss's first block is checked against the block list in the data's head: it does not wait for the list's own answer", async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(CHUNK)
  await c.ingest('headed', body)
  const events: string[] = []
  let release!: () => void
  const held = new Promise<void>(resolve => { release = resolve })
  // every shard holds its block lists' answers until the player has a byte; a bound (from the request on) only ends
  // the wait an old edge would deadlock on
  for (let i = 0; i < c.shards.length; i++) await proxyShard(t, c, i, { holdCrcs: held })
  await c.router.cluster.health.checkAll()
  // a list's own answer may take longer than the bound (past its timeout, the fill would stream under the whole-chunk rule)
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.readaheadChunks': 0, 'edge.blockListTimeoutMs': 10_000 })
  const pos = 65536
  const bound = setTimeout(() => { events.push('lists answered at the bound'); release() }, 3000)
  t.teardown(() => clearTimeout(bound))
  const got = await new Promise<Buffer>((resolve, reject) => {
    http.get(`${edge.url}/v1/content/headed`, { headers: { range: `bytes=${pos}-${CHUNK - 1}` } }, res => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => {
        if (parts.length === 0) { events.push('first byte'); clearTimeout(bound); release() }
        parts.push(d)
      })
      res.on('end', () => resolve(Buffer.concat(parts)))
      res.on('error', reject)
    }).on('error', reject)
  })
  t.ok(got.equals(body.subarray(pos)), 'byte-exact')
  t.same(events, ['first byte'], 'the first byte went out while every block list answer was held')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_head_block_lists_total', { result: 'used' }), 1, 'the list came in the data answer\'s head')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0, 'every byte direct')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failovers_total'), 0, 'no owner skipped')
})

t.test("a block list in the data's head that does not match the manifest is not used: the list's own answer decides", async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(2 * CHUNK)
  await c.ingest('lying-head', body)
  for (let i = 0; i < c.shards.length; i++) await proxyShard(t, c, i, { corruptHeadCrcs: true })
  await c.router.cluster.health.checkAll()
  const edge = await startTestEdge(t, { url: c.url, token: undefined })
  const got = await get(`${edge.url}/v1/content/lying-head`, { range: `bytes=70000-${2 * CHUNK - 1}` })
  t.equal(got.status, 206)
  t.ok(got.body.equals(body.subarray(70000)), 'byte-exact')
  // had the edge checked blocks against the head's list, every owner would have failed every block, and the relay sent them
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failovers_total'), 0, 'no owner was taken for a liar')
  t.ok(await metric(edge.url, 'reelcdn_edge_fill_head_block_lists_total', { result: 'mismatch' }) >= 1, 'the lying head lists counted')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_head_block_lists_total', { result: 'used' }), 0)
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0, 'nothing by the relay')
  const again = await get(`${edge.url}/v1/content/lying-head`)
  t.ok(again.body.equals(body), 'what was cached is right')
})

t.test('a seek within the chunks of the first grant lookup finds its grant in hand: one router round trip for both reads', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(8 * CHUNK)
  await c.ingest('seek', body)
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.readaheadChunks': 1 })
  const start = await get(`${edge.url}/v1/content/seek`, { range: 'bytes=0-9999' })
  t.ok(start.body.equals(body.subarray(0, 10_000)))
  const pos = 6 * CHUNK + 70_000
  const seek = await get(`${edge.url}/v1/content/seek`, { range: `bytes=${pos}-${pos + 9999}` })
  t.equal(seek.status, 206)
  t.ok(seek.body.equals(body.subarray(pos, pos + 10_000)), 'byte-exact')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_grant_requests_total', { result: 'router' }), 1, 'one lookup: edge.fill.grantChunks (8) chunks from the first')
  t.ok(await metric(edge.url, 'reelcdn_edge_fill_grant_requests_total', { result: 'cached' }) >= 1, 'the seek\'s grants were in hand')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0)
})

t.test('a cold title: the edge connects to the shards its grants name while the manifest is still on its way', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(2 * CHUNK)
  await c.ingest('preconnect', body)
  const proxies: ShardProxy[] = []
  for (let i = 0; i < c.shards.length; i++) proxies.push(await proxyShard(t, c, i))
  await c.router.cluster.health.checkAll()
  await c.ingest('first', randomBody(CHUNK))
  const rp = await routerProxy(t, c.url)
  // a router that sends no manifest with grants, learned on a first title: the manifest is then asked on its own
  rp.rewrite = url => url.replace('&manifest=1', '')
  const edge = await startTestEdge(t, { url: rp.url, token: undefined }, { 'cluster.chunkSize': CHUNK })
  t.equal((await get(`${edge.url}/v1/content/first`)).status, 200)
  let grantsAskedAt = Infinity
  let manifestAt = Infinity
  rp.hold = async url => {
    if (url.includes('/fill/')) grantsAskedAt = Math.min(grantsAskedAt, performance.now())
    // the manifest's answer waits for a connection to a shard opened after the grants were asked (bounded: an old edge
    // opens it only after the manifest)
    if (url.endsWith('/meta')) {
      for (const until = performance.now() + 3000; performance.now() < until; await sleep(5)) {
        if (proxies.some(p => p.opened.some(at => at > grantsAskedAt))) break
      }
      manifestAt = performance.now()
    }
  }
  const got = await get(`${edge.url}/v1/content/preconnect`, { range: 'bytes=0-9999' })
  t.ok(got.body.equals(body.subarray(0, 10_000)), 'byte-exact')
  const data = proxies.flatMap(p => p.granted).filter(g => /\/v1\/chunks\/preconnect\.[^/]+\/0$/.test(g.url))
  t.ok(data.length >= 1, 'the data request went to an owner under a grant')
  t.ok(manifestAt < Infinity, 'the manifest was asked on its own')
  t.ok(data.every(g => g.openedAt < manifestAt), `its connection was opened before the manifest was answered (${data.map(g => (manifestAt - g.openedAt).toFixed(0)).join(', ')} ms before)`)
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0, 'every byte direct')
})
