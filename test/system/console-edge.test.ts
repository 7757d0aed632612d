import t from 'tap'
import { join } from 'node:path'
import { request } from 'undici'
import { launch } from '../helpers/browser.js'
import { cell, figure, fitsWidth, openConsole, refresh } from '../helpers/console-page.js'
import { get, metric, settled, startTestEdge } from '../helpers/edge.js'
import { titleBytes } from '../helpers/titles.js'
import { logSink } from '../helpers/origin.js'
import { createLogger } from '../../lib/logger.js'
import { TestCluster, TOKEN } from './harness.js'

/**
 * The edge's status console (issue 18, docs/console.md): a router and shards,
 * an edge in front, a little traffic (one title read twice: a miss, then
 * hits), then the console in headless Chromium, its figures read from the
 * DOM and checked against the edge's /metrics. Screenshots (desktop and
 * phone) go into the test's directory.
 */
const CS = 64 * 1024
const ADMIN = 'edge-console-admin-token'

t.test('the edge console shows the figures /metrics has, behind the admin token', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const bytes = titleBytes(6 * CS + 99, 'console')
  t.equal((await c.ingest('console-title', bytes)).status, 201)
  const edge = await startTestEdge(t, { url: c.url, token: TOKEN }, { 'cluster.chunkSize': CS, 'edge.readaheadChunks': 0 },
    { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  for (let i = 0; i < 2; i++) {
    const got = await get(`${edge.url}/v1/content/console-title`)
    t.equal(got.body.length, bytes.length, `read ${i + 1} is whole`)
  }
  await settled(edge)

  const browser = await launch()
  t.teardown(() => browser.close())
  const page = await openConsole(browser, edge.url, ADMIN)
  const shots = t.testdir()
  await page.screenshot({ path: join(shots, 'edge-console.png'), fullPage: true })
  const served = await metric(edge.url, 'reelcdn_edge_bytes_served_total')
  const hit = await metric(edge.url, 'reelcdn_edge_bytes_served_total', { result: 'ram_hit' }) +
    await metric(edge.url, 'reelcdn_edge_bytes_served_total', { result: 'disk_hit' })
  t.equal(served, 2 * bytes.length, 'the metric counts both reads')
  t.equal(await figure(page, 'traffic.bytesServed'), served, 'bytes served as /metrics has them')
  t.equal(await figure(page, 'traffic.upstreamBytes'), await metric(edge.url, 'reelcdn_edge_upstream_bytes_total'), 'upstream bytes')
  t.ok(Math.abs((await figure(page, 'traffic.byteHitRatio') as number) - hit / served) < 1e-9, `byte hit ratio ${hit / served}`)
  t.ok(hit > 0, 'the second read hit')
  t.equal(await figure(page, 'tiers.fillsInFlight'), await metric(edge.url, 'reelcdn_edge_fills_in_flight'), 'fills in flight')
  for (const [i, tier] of ['ram', 'disk'].entries()) {
    t.equal(await cell(page, 'tiers', i, 'bytes'), await metric(edge.url, 'reelcdn_edge_tier_bytes', { tier }), `${tier} tier bytes`)
    t.equal(await cell(page, 'tiers', i, 'capacity'), await metric(edge.url, 'reelcdn_edge_tier_capacity_bytes', { tier }), `${tier} tier size`)
    t.equal(await cell(page, 'tiers', i, 'chunks'), await metric(edge.url, 'reelcdn_edge_tier_chunks', { tier }), `${tier} tier chunks`)
  }
  t.equal(await cell(page, 'topTitles', 0, 'contentId'), 'console-title', 'the title read is the top title')
  t.equal(await figure(page, 'upstream.health'), 'ok', 'the upstream answered')
  t.equal(await figure(page, 'upstream.requestsOk'), await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { result: 'ok' }), 'upstream requests ok')
  t.equal(await figure(page, 'prefill.window'), 'never', 'the prefill window as configured')
  t.equal(await figure(page, 'threads.configured'), 0, 'no serve threads')
  const points = Number(await page.getAttribute('[data-series="traffic.throughput"]', 'data-points'))
  t.ok(points >= 1, `the throughput sparkline has ${points} point(s)`)

  // more traffic, and the page's refresh shows it
  await get(`${edge.url}/v1/content/console-title`)
  await refresh(page)
  t.equal(await figure(page, 'traffic.bytesServed'), 3 * bytes.length, 'a refresh shows the third read')

  // on a phone: the same page, nothing wider than the screen
  const phone = await openConsole(browser, edge.url, ADMIN, { width: 390, height: 844 })
  await phone.screenshot({ path: join(shots, 'edge-console-phone.png'), fullPage: true })
  t.ok(await fitsWidth(phone), 'fits a 390 px wide screen')
  t.comment(`screenshots in ${t.testdirName}`)
})

t.test('the edge console refuses its figures without the admin token, and serves its page to anyone', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS, shards: 1, copies: 1 })
  const sink = logSink()
  const edge = await startTestEdge(t, { url: c.url, token: TOKEN }, { 'cluster.chunkSize': CS }, { REELCDN_EDGE_ADMIN_TOKEN: ADMIN },
    createLogger('edge', 'info', sink))
  for (const path of ['/', '/status']) {
    const page = await get(`${edge.url}${path}`)
    t.equal(page.status, 200, `${path} is the page`)
    t.match(String(page.headers['content-type']), /^text\/html/)
    t.match(page.body.toString(), /name="viewport"/, 'readable on a phone')
    t.notMatch(page.body.toString(), /https?:\/\/(?!www\.w3\.org)/, 'loads nothing from elsewhere')
  }
  const before = await metric(edge.url, 'reelcdn_http_client_errors_total', { reason: 'unauthorized' })
  for (const headers of [{}, { authorization: 'Bearer not-the-admin-token-7f3a' }]) {
    const res = await request(`${edge.url}/status.json`, { headers })
    const body = await res.body.json() as { error: { code: string; message: string } }
    t.equal(res.statusCode, 401, 'refused')
    t.equal(body.error.code, 'CDN_ERR_UNAUTHORIZED')
  }
  t.equal(await metric(edge.url, 'reelcdn_http_client_errors_total', { reason: 'unauthorized' }) - before, 2, 'each refusal counted')
  const refusals = sink.lines.filter(l => l.msg === 'status console refused: no or wrong admin token')
  t.equal(refusals.length, 2, 'each refusal logged')
  t.ok(refusals.every(l => l.level === 30 && l.remote !== undefined && l.err === undefined), 'at info, with the client\'s address, no stack')
  t.notOk(sink.lines.some(l => l.level >= 50), 'nothing at error')
  t.notOk(JSON.stringify(sink.lines).includes('7f3a'), 'the token sent is not logged')
  const ok = await request(`${edge.url}/status.json`, { headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(ok.statusCode, 200, 'with the token: the figures')
  const st = await ok.body.json() as { service: string; sections: { key: string }[] }
  t.equal(st.service, 'edge')
  t.same(st.sections.map(s => s.key), ['traffic', 'tiers', 'titles', 'prefill', 'upstream', 'threads'])
})

t.test('with no admin token configured, the console\'s figures are closed and say what to set', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS, shards: 1, copies: 1 })
  const edge = await startTestEdge(t, { url: c.url, token: TOKEN }, { 'cluster.chunkSize': CS })
  const res = await request(`${edge.url}/status.json`, { headers: { authorization: 'Bearer anything' } })
  const body = await res.body.json() as { error: { message: string } }
  t.equal(res.statusCode, 401)
  t.match(body.error.message, /REELCDN_EDGE_ADMIN_TOKEN/)
})
