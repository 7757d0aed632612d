import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { launch } from '../../test/helpers/browser.js'
import { renderHtml, type LoadResult } from './report.js'

const result: LoadResult = {
  mode: 'players', scenario: 'prime-time', target: 'http://127.0.0.1:8080', startedAt: new Date(0).toISOString(), durationS: 30,
  generatorCeilingMBps: 350,
  timeline: Array.from({ length: 30 }, (_, i) => ({ t: i + 1, mbps: 50 + 10 * Math.sin(i), hitRatio: Math.min(1, i / 20), sessions: i })),
  players: {
    sessions: 40, failed: 1, startupMs: { p50: 120, p95: 400, p99: 800, max: 900, samples: Array.from({ length: 39 }, (_, i) => 50 + i * 20) },
    rebufferRatio: 0.01, stallsPerSession: 0.2, stallSamplesMs: [100, 250, 80], bytes: 1.5e9, bytesReceived: 1.6e9,
  },
  cache: { byteHitRatio: 0.8, originOffload: 0.78, edgeBytesServed: 1.5e9, upstreamBytes: 3.3e8 },
  http: { requests: 1000, reqPerSec: 33, mbps: 50, latencyMs: { p50: 3, p90: 8, p99: 20, max: 40 }, latencySamplesMs: [1, 2, 3, 8, 20, 40], errorsByStatus: { 502: 2 } },
}

t.test('the HTML report renders its charts in a browser with no network and no console errors', async t => {
  const file = join(t.testdir(), 'report.html')
  const html = renderHtml(result)
  t.notMatch(html, /<script|https?:\/\/(?!127\.0\.0\.1|www\.w3\.org)/, 'no script, no external resource')
  writeFileSync(file, html)
  const browser = await launch()
  t.teardown(() => browser.close())
  const ctx = await browser.newContext({ offline: true })
  const page = await ctx.newPage()
  const problems: string[] = []
  page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()) })
  page.on('pageerror', e => problems.push(e.message))
  await page.goto(pathToFileURL(file).href)
  const charts = await page.$$eval('svg', svgs => svgs.map(s => ({
    shapes: s.querySelectorAll('polyline, rect').length,
    width: s.getBoundingClientRect().width,
    label: s.getAttribute('aria-label'),
  })))
  t.ok(charts.length >= 5, `${charts.length} charts`)
  for (const c of charts) t.ok(c.shapes > 0 && c.width > 100, `${c.label} is drawn`)
  t.same(problems, [], 'no console errors')
  t.match(await page.textContent('body'), /rebuffer ratio/)
})
