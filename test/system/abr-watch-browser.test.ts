import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { TestCluster, TOKEN, EDGE_TOKEN } from './harness.js'
import { ingestLadder, makeLadder } from '../helpers/abr.js'
import type { Page } from 'playwright-core'
import { launch } from '../helpers/browser.js'

/**
 * The router's watch page in headless Chromium, with play tokens required
 * (router.requireToken): the page asks /v1/play, whose first URL is an edge
 * that is down, so it falls back to the router (the origin URL, last), and
 * plays the adaptive title with hls.js, then with dash.js (`?player=dash`),
 * from the tokened URLs alone — its scripts from /assets/, under its own CSP,
 * with no page error and no CSP refusal.
 */
const c = await TestCluster.start(t, { overrides: { 'router.requireToken': true }, env: { REELCDN_ROUTER_READ_TOKEN: 'edge-read' } })
const dir = join(c.dir, 'ladder')
await mkdir(dir, { recursive: true })
await ingestLadder(c.url, 'abr', await makeLadder(dir), TOKEN, { title: 'A ladder' })
// an edge that heartbeats and then dies: ranked first, it refuses every connection
const hb = await request(`${c.url}/v1/edges/heartbeat`, { method: 'POST', headers: { authorization: `Bearer ${EDGE_TOKEN}`, 'content-type': 'application/json' },
  body: JSON.stringify({ id: 'dead', url: 'http://127.0.0.1:9', networks: ['127.0.0.0/8'], healthy: true, load: 0, freeBytes: 0 }) })
t.equal(hb.statusCode, 200)
await hb.body.dump()

const host = new URL(c.url).host

// page-side code as strings: it runs in the browser, where the DOM is (this project compiles without DOM types)
const PLAYING = `(() => { const s = window.reelcdn, v = document.getElementById('video')
  return !!s && s.host === ${JSON.stringify(host)} && v.currentTime > 1.5 && document.getElementById('rendition').textContent !== '–' })()`

/**
 * Polls `expr` in the page until it is true. Not page.waitForFunction: that
 * evaluates its predicate with eval inside the page, which the page's CSP
 * (script-src 'self', no 'unsafe-eval') rightly refuses; page.evaluate goes
 * through the DevTools protocol, which the CSP does not govern.
 */
async function until(page: Page, expr: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await page.evaluate(expr))) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${expr}; page log: ${String(await page.evaluate(`document.getElementById('log').textContent`))}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

t.test('the router\'s watch page in Chromium', async t => {
  const browser = await launch()
  t.teardown(() => browser.close())
  for (const player of ['hls', 'dash'] as const) {
    await t.test(`the watch page plays the ladder from the router with ${player === 'hls' ? 'hls.js' : 'dash.js'} after the dead edge fails`, async t => {
      const page = await browser.newPage()
      t.teardown(() => page.close())
      const errors: string[] = []
      page.on('pageerror', e => errors.push(e.message))
      page.on('console', m => { if (/Content Security Policy|Refused to/.test(m.text())) errors.push(m.text()) })
      await page.goto(`${c.url}/watch/abr${player === 'dash' ? '?player=dash' : ''}`)
      t.equal(await page.title(), 'abr — reelcdn')
      await until(page, `!!window.reelcdn && window.reelcdn.urls.length > 0`, 10_000)
      t.same(await page.evaluate('window.reelcdn.urls.map(u => u.id)'), ['dead', 'origin'], 'the dead edge first, the router last')
      // not awaited: a play() made before a source attaches settles only when one plays, or never
      await page.evaluate(`void document.getElementById('video').play().catch(() => {})`)
      await until(page, PLAYING, 20_000)
      const log = String(await page.evaluate(`document.getElementById('log').textContent`))
      t.match(log, /fatal on 127\.0\.0\.1:9/, 'the edge failed first')
      t.match(log, /playing from origin/)
      t.match(String(await page.evaluate(`document.getElementById('player').textContent`)), player === 'hls' ? /^hls\.js / : /^dash\.js /)
      t.match(String(await page.evaluate(`document.getElementById('server').textContent`)), `origin · ${host}`)
      t.match(String(await page.evaluate(`document.getElementById('rendition').textContent`)), /^(180|90)p · /)
      t.same(errors, [], 'no page error, no CSP refusal')
    })
  }
})
