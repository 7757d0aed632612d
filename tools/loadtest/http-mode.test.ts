import t, { type Test } from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { generatorCeiling, httpMode, type HttpModeOptions } from './http-mode.js'
import { Zipf } from './random.js'

/**
 * What `loadtest http` asks for, seen by a server that records every request:
 * titles by Zipf rank, the range sizes and positions asked for, both bounds,
 * and errors counted by status.
 */
interface Seen { id: string; start: number; len: number }

async function server(t: Test, answer: (req: IncomingMessage) => number = () => 206) {
  const seen: Seen[] = []
  const body = Buffer.alloc(1024 * 1024, 1)
  const s = createServer((req, res) => {
    if (req.url === '/metrics') return res.writeHead(404, { 'content-length': 0 }).end()
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!
    const start = Number(m[1])
    const len = Number(m[2]) - start + 1
    seen.push({ id: decodeURIComponent(req.url!.split('/').pop()!), start, len })
    const status = answer(req)
    if (status !== 206) return res.writeHead(status, { 'content-length': 0 }).end()
    res.writeHead(206, { 'content-length': len }).end(body.subarray(0, len))
  })
  await new Promise<void>(r => s.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen }
}

const titles = Array.from({ length: 8 }, (_, i) => ({ contentId: `t${i}`, size: 10_000_000 + i }))
const base = (url: string): HttpModeOptions => ({ target: url, titles, zipf: 1.1, rangeBytes: [1000, 50_000], openingShare: 0.25,
  connections: 4, durationS: 30, requests: 3000, seed: 7, measureCeiling: false })

t.test('titles follow the Zipf law and ranges the sizes and positions asked for', async t => {
  const srv = await server(t)
  const r = await httpMode(base(srv.url))
  t.equal(r.http!.requests, 3000)
  t.equal(srv.seen.length, 3000, 'the server saw every request')
  const z = new Zipf(titles.length, 1.1)
  for (let k = 0; k < 3; k++) {
    const got = srv.seen.filter(s => s.id === `t${k}`).length / srv.seen.length
    t.ok(Math.abs(got - z.probability(k)) < 0.03, `rank ${k}: ${got.toFixed(3)} vs ${z.probability(k).toFixed(3)}`)
  }
  t.same([...new Set(srv.seen.map(s => s.len))].sort((a, b) => a - b), [1000, 50_000], 'only the two sizes')
  t.ok(Math.abs(srv.seen.filter(s => s.len === 1000).length / 3000 - 0.5) < 0.05, 'each drawn about half the time')
  const openings = srv.seen.filter(s => s.start === 0).length / 3000
  t.ok(Math.abs(openings - 0.25) < 0.04, `${openings} of requests at the opening`)
  const size = (id: string) => titles.find(x => x.contentId === id)!.size
  t.ok(srv.seen.every(s => s.start + s.len <= size(s.id)), 'every range inside its title')
  const rest = srv.seen.filter(s => s.start > 0)
  t.ok(rest.some(s => s.start > size(s.id) / 2) && rest.some(s => s.start < size(s.id) / 2), 'other positions spread over the title')
  t.same(r.http!.errorsByStatus, {})
  t.ok(r.http!.latencyMs.p50 <= r.http!.latencyMs.p90! && r.http!.latencyMs.p90! <= r.http!.latencyMs.p99 && r.http!.latencyMs.p99 <= r.http!.latencyMs.max)
})

t.test('a Zipf exponent of 0 spreads requests evenly', async t => {
  const srv = await server(t)
  await httpMode({ ...base(srv.url), zipf: 0 })
  for (const x of titles) {
    const got = srv.seen.filter(s => s.id === x.contentId).length / srv.seen.length
    t.ok(Math.abs(got - 1 / 8) < 0.035, `${x.contentId}: ${got.toFixed(3)}`)
  }
})

t.test('the duration bounds a run whose request bound is far away', async t => {
  const srv = await server(t)
  const t0 = performance.now()
  const r = await httpMode({ ...base(srv.url), durationS: 1, requests: 10_000_000 })
  const s = (performance.now() - t0) / 1000
  t.ok(s < 3, `stopped after ${s.toFixed(2)} s`)
  t.ok(r.http!.requests > 0 && r.http!.requests < 10_000_000)
  t.ok(r.timeline.length >= 1, 'a timeline point a second')
})

t.test('a run without both bounds is refused', async t => {
  await t.rejects(httpMode({ ...base('http://127.0.0.1:1'), requests: 0 }), /a time and a request bound/)
  await t.rejects(httpMode({ ...base('http://127.0.0.1:1'), durationS: 0 }), /a time and a request bound/)
})

t.test('errors are counted by status', async t => {
  const srv = await server(t, req => req.url!.endsWith('/t0') ? 503 : req.url!.endsWith('/t1') ? 404 : 206)
  const r = await httpMode({ ...base(srv.url), requests: 1000 })
  const by = (id: string) => srv.seen.filter(s => s.id === id).length
  t.same(r.http!.errorsByStatus, { 503: by('t0'), 404: by('t1') })
  t.ok(by('t0') > 100 && by('t1') > 50)
})

t.test('the generator ceiling is measured against an in-memory server', async t => {
  const mbps = await generatorCeiling(64 * 1024, 2, 1)
  t.ok(mbps > 1, `${mbps.toFixed(0)} MB/s`)
})

t.test('a target without /metrics still runs, and says why there are no cache figures', async t => {
  const srv = await server(t)
  const r = await httpMode({ ...base(srv.url), requests: 50, metrics: { edges: [srv.url] } })
  t.equal(r.http!.requests, 50)
  t.equal(r.cache, undefined)
  t.match(r.metricsError, /^no cache figures: http:\/\/127\.0\.0\.1:\d+\/metrics answered 4\d\d$/)
})
