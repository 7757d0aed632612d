import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openReport } from '../../test/helpers/report-browser.js'
import { ceilingWarning, renderHtml, type LoadResult } from './report.js'

const result: LoadResult = {
  mode: 'players', scenario: 'prime-time', target: 'http://127.0.0.1:8080', startedAt: new Date(0).toISOString(), durationS: 30,
  generatorCeilingMBps: 350,
  timeline: Array.from({ length: 30 }, (_, i) => ({ t: i + 1, mbps: 50 + 10 * Math.sin(i), hitRatio: Math.min(1, i / 20), hitRatioSoFar: i / 40,
    offload: Math.min(1, i / 25), offloadSoFar: i / 50, sessions: i })),
  players: {
    sessions: 40, failed: 1, startupMs: { p50: 120, p95: 400, p99: 800, max: 900, samples: Array.from({ length: 39 }, (_, i) => 50 + i * 20) },
    rebufferRatio: 0.01, stallsPerSession: 0.2, stallSamplesMs: [100, 250, 80], bytes: 1.5e9, bytesReceived: 1.6e9,
  },
  cache: { byteHitRatio: 0.8, originOffload: 0.78, edgeBytesServed: 1.5e9, upstreamBytes: 3.3e8, routerBytesServed: null },
  http: { requests: 1000, reqPerSec: 33, mbps: 50, latencyMs: { p50: 3, p90: 8, p99: 20, max: 40 }, latencySamplesMs: [1, 2, 3, 8, 20, 40], errorsByStatus: { 502: 2 } },
}

t.test('the HTML report has no script and no external resource, and escapes what it shows', async t => {
  const html = renderHtml({ ...result, scenario: '<script>alert(1)</script>', target: 'http://example.com/"><img src=x>' })
  t.notMatch(html, /<script/i, 'no script element')
  t.notMatch(html, /<img|<link|@import|url\(/i, 'no image, stylesheet or url() to fetch')
  t.notMatch(html, /(src|href)\s*=\s*["']?https?:/i, 'no attribute loads a URL')
})

t.test('the HTML report renders its charts in a browser with no network and no console errors', async t => {
  const file = join(t.testdir(), 'report.html')
  writeFileSync(file, renderHtml(result))
  const seen = await openReport(file)
  t.same(seen.charts.map(c => c.label), ['Throughput', 'Byte hit ratio and origin offload at the edges', 'Latency', 'Start-up delay', 'Stall durations'])
  for (const c of seen.charts) {
    t.ok(c.width > 100, `${c.label} is laid out`)
    t.ok(c.lines.some(n => n >= 2) || c.bars > 0, `${c.label} draws a line or bars`)
  }
  t.same(seen.charts[1]!.lines, [30, 30, 30, 30], 'hit ratio and offload: each second and since start, a point a second')
  t.same(seen.requests, [], 'the page fetched nothing')
  t.same(seen.problems, [], 'no console errors')
  t.match(seen.text, /rebuffer ratio/)
})

t.test('a chart with no data draws no line, which the browser check sees', async t => {
  const file = join(t.testdir(), 'report.html')
  writeFileSync(file, renderHtml({ ...result, timeline: [] }))
  const seen = await openReport(file)
  t.same(seen.charts[0]!.lines, [0], 'throughput: an empty line')
  t.same(seen.charts[1]!.lines, [0, 0, 0, 0], 'hit ratio and offload: empty lines')
})

t.test('a run near the generator\'s ceiling says so', async t => {
  const players = (received: number): LoadResult => ({ ...result, http: undefined, durationS: 10, generatorCeilingMBps: 100,
    players: { ...result.players!, bytesReceived: received } })
  t.equal(ceilingWarning(players(700e6)), null, '70 MB/s of 100: no warning')
  t.match(ceilingWarning(players(850e6)), /85.0 MB\/s, 85 % of the generator's ceiling \(100.0 MB\/s\)/)
  t.match(renderHtml(players(850e6)), /<th>warning<\/th><td>this run received 85.0 MB\/s/)
  t.equal(ceilingWarning({ ...players(850e6), generatorCeilingMBps: null }), null, 'not measured: nothing to compare')
  const http: LoadResult = { ...result, generatorCeilingMBps: 100, players: undefined, http: { ...result.http!, mbps: 99 } }
  t.match(ceilingWarning(http), /99.0 MB\/s, 99 %/)
})
