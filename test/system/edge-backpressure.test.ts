import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until } from '../helpers/edge.js'

/**
 * A slow or stalled player applies backpressure: the edge sends only as fast
 * as the player reads, fetches ahead only by the readahead depth, and cuts a
 * player that reads nothing for sendStallTimeoutMs. The player is a raw socket
 * that stops reading, so nothing in between buffers for it.
 */
const CS = 1024 * 1024
const CHUNKS = 32

async function stalledPlayer(url: string, path: string): Promise<net.Socket> {
  const u = new URL(url)
  const sock = net.connect(Number(u.port), u.hostname)
  await once(sock, 'connect')
  sock.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`)
  sock.pause()
  return sock
}

t.test('a stalled player holds back the edge: no unbounded buffering, no fetching far ahead', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CHUNKS * CS, 'bp')
  await up.addTitle('bp', bytes, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 1, 'edge.ramBytes': 4 * CS, 'edge.diskBytes': 4 * CS })
  const sock = await stalledPlayer(edge.url, '/v1/content/bp')
  // the edge sends until the socket buffers on both sides are full, then waits for 'drain'
  await until(async () => (await metric(edge.url, 'reelcdn_edge_responses_blocked')) === 1 &&
    (await metric(edge.url, 'reelcdn_edge_fills_in_flight')) === 0, 'the response to block on the player, with no fill running')
  const fetched = up.requests('bp')
  t.ok(fetched < CHUNKS / 2, `with the player stalled, ${fetched} of ${CHUNKS} chunks were fetched (socket buffers plus readahead)`)
  const ram = edge.cache.ram.stats().bytes
  t.ok(ram <= 4 * CS, `RAM tier within its bound while stalled (${ram} bytes)`)

  // the player resumes and gets every byte, in order
  const parts: Buffer[] = []
  sock.on('data', d => parts.push(d))
  sock.resume()
  await until(() => parts.reduce((n, p) => n + p.length, 0) >= bytes.length, 'the rest of the body', 30000)
  const raw = Buffer.concat(parts)
  const body = raw.subarray(raw.indexOf('\r\n\r\n') + 4)
  t.ok(body.equals(bytes), 'byte-exact once the player reads again')
  sock.destroy()
})

t.test('a player that reads nothing for sendStallTimeoutMs is cut', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  await up.addTitle('st', titleBytes(CHUNKS * CS, 'st'), { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.sendStallTimeoutMs': 300 })
  const sock = await stalledPlayer(edge.url, '/v1/content/st')
  await until(async () => (await metric(edge.url, 'reelcdn_edge_send_stalls_total')) === 1, 'the stall timeout')
  sock.resume()
  sock.on('data', () => {})
  await once(sock, 'close')
  t.pass('the connection was closed by the edge')
})

t.test('a RAM hit goes out in one write, and a player that stalls on it is still cut after sendStallTimeoutMs', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  // one chunk far larger than the loopback socket buffers, so a stalled player leaves most of it unsent
  const big = 32 * CS
  const bytes = titleBytes(big, 'ram1')
  await up.addTitle('ram1', bytes, { chunkSize: big })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.ramBytes': 2 * big, 'edge.diskBytes': 0, 'edge.sendStallTimeoutMs': 300 })
  const warm = await get(`${edge.url}/v1/content/ram1`)
  t.ok(warm.body.equals(bytes), 'the first read fills RAM')
  const r = await get(`${edge.url}/v1/content/ram1`, { range: 'bytes=1000-2000999' })
  t.equal(r.status, 206)
  t.ok(r.body.equals(bytes.subarray(1000, 2001000)), 'a range from RAM is byte-exact')
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'ram_hit' }), 1)
  t.equal(await metric(edge.url, 'reelcdn_edge_bytes_served_total', { result: 'ram_hit' }), 2_000_000)

  const sock = await stalledPlayer(edge.url, '/v1/content/ram1')
  await until(async () => (await metric(edge.url, 'reelcdn_edge_send_stalls_total')) === 1, 'the stall sweep')
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'ram_hit' }), 2, 'the stalled read was a RAM hit')
  t.equal(await metric(edge.url, 'reelcdn_edge_responses_blocked'), 0, 'nothing is left waiting once it is cut')
  sock.resume()
  let got = 0
  sock.on('data', d => { got += d.length })
  await once(sock, 'close')
  t.ok(got < big, `the connection was closed by the edge before the whole body (${got} of ${big} bytes)`)
})
