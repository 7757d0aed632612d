import t from 'tap'
import net from 'node:net'
import { hostileBattery, raw } from '../helpers/hostile.js'
import { metric, until } from '../helpers/edge.js'
import { TestCluster, TOKEN, EDGE_TOKEN, TOKEN_KEYS, randomBody } from './harness.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { startTestEdge } from '../helpers/edge.js'

/**
 * The hostile-input battery (test/helpers/hostile.ts) against the router and
 * the edge, as origin-hostile.test.ts runs it against a shard: every case gets
 * a clear answer, no process falls over, no connection outlives its timeout.
 */
const headersTimeoutMs = 500
const limits = { 'http.headersTimeoutMs': headersTimeoutMs, 'http.requestTimeoutMs': 1500, 'http.keepAliveTimeoutMs': 300 }

t.test('the router answers the hostile-input battery and stays up', async t => {
  // JSON body limits off their defaults (4 MiB, 64 KiB): the battery's 413 and at-the-limit cases prove the settings apply
  const bodies = { 'router.maxEdgeReportBytes': 8192, 'router.maxPositionReportBytes': 1024 }
  const c = await TestCluster.start(t, { overrides: { ...limits, ...bodies } })
  t.equal((await c.ingest('good', randomBody(150_000))).status, 201)
  await hostileBattery(t, {
    base: c.url, good: '/v1/content/good', bytes: '/v1/content/good', headersTimeoutMs, requestTimeoutMs: 1500, keepAliveTimeoutMs: 300,
    idPath: id => `/v1/content/${id}`,
    streamPut: { path: '/v1/content/slow', headers: { authorization: `Bearer ${TOKEN}` } },
    jsonBody: { method: 'POST', path: '/v1/edges/heartbeat', maxBytes: 8192, headers: { authorization: `Bearer ${EDGE_TOKEN}` } },
  })
  // the router's other JSON routes: an edge's demand report, a player's position report (its play token names the viewer)
  await hostileBattery(t, {
    base: c.url, good: '/v1/content/good', headersTimeoutMs, only: ['bodies'], idPath: id => `/v1/content/${id}`,
    jsonBody: { method: 'POST', path: '/v1/demand', maxBytes: 8192, headers: { authorization: `Bearer ${EDGE_TOKEN}` } },
  })
  const play = signToken(KeyRing.parse(TOKEN_KEYS), { cid: 'good', vid: 'viewer-1', exp: Math.floor(Date.now() / 1000) + 600 })
  await hostileBattery(t, {
    base: c.url, good: '/v1/content/good', headersTimeoutMs, only: ['bodies'], idPath: id => `/v1/content/${id}`,
    jsonBody: { method: 'PUT', path: '/v1/sessions/good', maxBytes: 1024, headers: { authorization: `Bearer ${play}` } },
  })
  // the chunk route and the meta route parse ids and indexes too
  await hostileBattery(t, {
    base: c.url, good: '/v1/content/good/chunks/0', bytes: '/v1/content/good/chunks/1', headersTimeoutMs, only: ['traversal', 'ranges'],
    idPath: id => `/v1/content/${id}/chunks/0`,
  })
  await hostileBattery(t, {
    base: c.url, good: '/v1/content/good/chunks/0', headersTimeoutMs, only: ['traversal'],
    idPath: id => `/v1/content/good/chunks/${id}`,
  })
})

t.test('the edge answers the hostile-input battery and stays up', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  await up.addTitle('good', titleBytes(300_000, 'hostile'), { chunkSize: 128 * 1024 })
  const edge = await startTestEdge(t, up, limits, { REELCDN_EDGE_ADMIN_TOKEN: 'edge-admin' })
  await hostileBattery(t, {
    base: edge.url, good: '/v1/content/good', bytes: '/v1/content/good', headersTimeoutMs, requestTimeoutMs: 1500, keepAliveTimeoutMs: 300,
    idPath: id => `/v1/content/${id}`,
  })
  await hostileBattery(t, {
    base: edge.url, good: '/v1/content/good', headersTimeoutMs, only: ['traversal'],
    idPath: id => `/v1/cache/${id}`, method: 'DELETE', headers: { authorization: 'Bearer edge-admin' },
  })
  t.same(up.metaLog.filter(id => id !== 'good'), [], 'no hostile id reached the upstream')
})

t.test('an edge with a serve thread answers the request-line, field and smuggling cases in both threads', async t => {
  // a serve thread has a handler path of its own (edge/serve/serve-thread.ts); the kernel gives each new connection
  // to it or to the main thread, so each case goes four times, and the thread's own refusals are counted
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  await up.addTitle('good', titleBytes(300_000, 'hostile-threads'), { chunkSize: 128 * 1024 })
  const edge = await startTestEdge(t, up, { ...limits, 'edge.serveThreads': 1, 'edge.readaheadChunks': 0 })
  t.equal((await raw(edge.url, 'GET /v1/content/good HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n')).status, 200, 'warm')
  await hostileBattery(t, {
    base: edge.url, good: '/v1/content/good', headersTimeoutMs, idPath: id => `/v1/content/${id}`, only: ['http', 'smuggling', 'limits', 'traversal'], repeat: 4,
  })
  // which loop accepts is the kernel's choice, and under load it may give the main thread nearly every connection:
  // if the thread refused none of the cases, bursts of one (two Host fields) until it does
  const refused = () => metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'refused' })
  for (let i = 0; i < 20 && await refused() === 0; i++) {
    const got = await Promise.all(Array.from({ length: 8 }, () => raw(edge.url, 'GET /v1/content/good HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n')))
    if (got.some(r => r.status !== 400)) t.fail(`two Host fields: ${got.map(r => r.status).join(' ')}`)
    await new Promise(r => setTimeout(r, 30)) // a flush of the thread's counts
  }
  t.ok(await refused() > 0, 'the serve thread refused requests itself')
})

t.test('past http.maxConnections new connections are dropped, and service resumes once some close', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  await up.addTitle('good', titleBytes(1000, 'maxconn'), { chunkSize: 128 * 1024 })
  const edge = await startTestEdge(t, up, { 'http.maxConnections': 20 })
  const { hostname, port } = new URL(edge.url)
  const idle = await Promise.all(Array.from({ length: 20 }, () => new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect(Number(port), hostname, () => resolve(c))
    c.on('error', reject)
  })))
  const probe = (waitMs: number) => raw(edge.url, 'GET /v1/content/good HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n', waitMs)
    .catch(() => ({ status: 0 })) // a reset before any byte
  await until(async () => (await probe(500)).status === 0,
    'the 21st connection to be dropped')
  t.pass('the 21st connection is dropped without an answer')
  for (const c of idle) c.destroy()
  await until(async () => (await probe(1000)).status === 200,
    'service to resume')
  t.pass('served again once the idle connections closed')
  await edge.close()
})
