import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBody } from './harness.js'
import { get, metric, startTestEdge } from '../helpers/edge.js'
import { directCluster, routerProxy } from '../helpers/direct-cluster.js'

/**
 * A cold miss's first byte (issue 16): what the edge must not wait for in a
 * row. Each test orders the edge's requests with a barrier in a proxy in
 * front of the router; a bounded wait only breaks the deadlock an old order
 * would meet, so that it fails instead of hanging.
 */
const KiB = 1024
const CHUNK = 256 * KiB

t.test('a cold title: its chunk\'s fill grants are asked while the manifest is on its way, and the fill uses them', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(3 * CHUNK)
  await c.ingest('cold', body)
  const rp = await routerProxy(t, c.url)
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
  const edge = await startTestEdge(t, { url: rp.url, token: undefined }, { 'cluster.chunkSize': CHUNK })
  const pos = 2 * CHUNK + 1000
  const got = await get(`${edge.url}/v1/content/cold`, { range: `bytes=${pos}-${pos + 9999}` })
  t.equal(got.status, 206)
  t.ok(got.body.equals(body.subarray(pos, pos + 10_000)), 'byte-exact')
  t.match(events[0], /^grants \/v1\/content\/cold\/fill\/2\?/, `the grants of the chunk read went out first: ${events.join(' | ')}`)
  t.equal(events[1], 'manifest answered')
  t.equal(rp.fills, 1, 'one grant answer: the fill waited for the one asked early')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_grant_requests_total', { result: 'router' }), 1)
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
