import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { adaptiveManifest, ladderFiles, makeLadder } from '../helpers/edge-ladder.js'
import { get, metric, settled, startTestEdge } from '../helpers/edge.js'
import { launch } from '../helpers/browser.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { WATCH_CSP } from '../../lib/watch/assets.js'
import type { Manifest } from '../../lib/manifest.js'
import type { Rendition } from '../../lib/media/rendition.js'

/**
 * The watch page on the edge (issue 15): GET /watch/{id} and /assets/{name}
 * answered by the edge itself, with their types, ETags, caching and CSP, no
 * play token needed even where content needs one; and in headless Chromium,
 * the page served by one edge asks the play API (the edge's upstream), falls
 * back from a dead first URL, and plays the tokened master (hls.js) and MPD
 * (dash.js) from a second edge on another origin, under the page's CSP.
 */
const CS = 64 * 1024
const KEYS = 'k1:abr-edge-watch-test-key-0123456789abcdef'

t.test('the watch page and its scripts: types, ETags, caching, CSP, no token needed', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const edge = await startTestEdge(t, up, { 'edge.requireToken': true }, { REELCDN_TOKEN_KEYS: KEYS })
  const page = await get(`${edge.url}/watch/abr`)
  t.equal(page.status, 200, 'no token needed: the page holds no content')
  t.match(page.headers, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache', 'content-security-policy': WATCH_CSP,
    'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', etag: /^"[0-9a-f]{64}"$/ })
  const html = page.body.toString('utf8')
  t.match(html, `&#34;playApi&#34;:&#34;${up.url}&#34;`, 'the page asks the play API at the edge\'s upstream')
  t.match(html, '<script src="/assets/hls.min.js">', 'its scripts from this edge')
  t.equal((await get(`${edge.url}/watch/abr`, { 'if-none-match': String(page.headers.etag) })).status, 304, 'revalidated by its ETag')
  const head = await get(`${edge.url}/watch/abr`, {}, 'HEAD')
  t.equal(head.status, 200)
  t.equal(Number(head.headers['content-length']), page.body.length)
  t.match(await get(`${edge.url}/watch/..%2Fx`), { status: 400 }, 'a bad id is refused by name')

  for (const name of ['hls.min.js', 'dash.all.min.js', 'watch.js']) {
    const a = await get(`${edge.url}/assets/${name}`)
    t.equal(a.status, 200, name)
    t.match(a.headers, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=3600', 'x-content-type-options': 'nosniff' })
    t.ok(a.body.length > 1000, `${name}: ${a.body.length} bytes`)
    t.equal((await get(`${edge.url}/assets/${name}`, { 'if-none-match': String(a.headers.etag) })).status, 304, `${name} revalidated`)
  }
  const missing = await get(`${edge.url}/assets/evil.js`)
  t.equal(missing.status, 404)
  t.match(missing.body.toString('utf8'), /the assets are hls\.min\.js, dash\.all\.min\.js, watch\.js/)
  t.equal(up.metaLog.length, 0, 'no upstream request')

  const moved = await startTestEdge(t, up, { 'edge.playApiUrl': 'https://router.example/' })
  t.match((await get(`${moved.url}/watch/abr`)).body.toString('utf8'), '&#34;playApi&#34;:&#34;https://router.example&#34;', 'edge.playApiUrl wins')
  t.equal(await metric(edge.url, 'reelcdn_http_requests_total', { route: '/watch/:id', status: '2xx' }), 2)
})

/** A port nothing listens on: a first URL that fails at once. */
async function deadPort(): Promise<number> {
  const s = http.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as AddressInfo).port
  await new Promise(resolve => s.close(resolve))
  return port
}

t.test('in a browser, the page on one edge falls back from a dead URL and plays from another edge with tokens required, hls.js and dash.js', async t => {
  const ladder = await makeLadder()
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const man = adaptiveManifest('abr', ladder, CS) as Manifest & { renditions: Rendition[] }
  up.addAdaptive(man, ladderFiles(ladder))
  const pageEdge = await startTestEdge(t, up)
  const playEdge = await startTestEdge(t, up, { 'edge.requireToken': true }, { REELCDN_TOKEN_KEYS: KEYS })
  const tok = signToken(KeyRing.parse(KEYS), { cid: 'abr', exp: Math.floor(Date.now() / 1000) + 600, vid: 'viewer' })
  const at = (base: string) => ({ url: `${base}/v1/content/abr/t/${tok}/master.m3u8`, hls: `${base}/v1/content/abr/t/${tok}/master.m3u8`,
    dash: `${base}/v1/content/abr/t/${tok}/manifest.mpd` })
  const dead = `http://127.0.0.1:${await deadPort()}`
  up.play.set('abr', { contentId: 'abr', title: 'ABR clip', urls: [{ kind: 'edge', id: 'dead', ...at(dead) }, { kind: 'edge', id: 'b', ...at(playEdge.url) }] })

  const browser = await launch()
  t.teardown(() => browser.close())
  for (const player of ['hls', 'dash']) {
    const page = await browser.newPage()
    const problems: string[] = []
    page.on('pageerror', e => problems.push(`page error: ${e.message}`))
    const consoleLines: string[] = []
    page.on('console', m => { consoleLines.push(m.text()); if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`) })
    await page.goto(`${pageEdge.url}/watch/abr?player=${player}`)
    // a function, not a string: a string predicate is eval'd in the page, which its CSP refuses
    const playing = await page.waitForFunction(() => (globalThis as unknown as { document: { getElementById(id: string): { currentTime: number } } })
      .document.getElementById('video').currentTime > 1, undefined, { timeout: 30_000 }).then(() => true, () => false)
    if (!playing) {
      t.fail(`${player}: not playing after 30 s`, { log: await page.evaluate('document.getElementById("log").textContent'), problems, console: consoleLines })
      continue
    }
    const s = await page.evaluate(`({ at: reelcdn.at, host: reelcdn.host, err: document.getElementById("video").error,
      server: document.getElementById("server").textContent, title: document.getElementById("title").textContent,
      log: document.getElementById("log").textContent })`) as { at: number; host: string; err: unknown; server: string; title: string; log: string }
    t.equal(s.at, 1, `${player}: fell back to the second URL`)
    t.equal(s.host, new URL(playEdge.url).host, `${player}: plays from the other edge`)
    t.match(s.log, /fatal on 127\.0\.0\.1:\d+/, `${player}: the dead server's failure is shown`)
    t.equal(s.server, `edge · ${s.host}`)
    t.equal(s.title, 'ABR clip', 'the title from /v1/play')
    t.equal(s.err, null, `${player}: no media error`)
    t.same(problems, [], `${player}: no page error and no CSP violation`)
    await page.close()
  }
  t.ok(await metric(playEdge.url, 'reelcdn_edge_playlists_total', { kind: 'master' }) >= 1, 'the HLS master from the playing edge')
  t.ok(await metric(playEdge.url, 'reelcdn_edge_playlists_total', { kind: 'mpd' }) >= 1, 'the MPD from the playing edge')
  t.equal(await metric(pageEdge.url, 'reelcdn_edge_file_bytes_served_total'), 0, 'the page\'s edge served no media')
  await settled(playEdge)
})
