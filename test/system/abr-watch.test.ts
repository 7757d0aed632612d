import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { request } from 'undici'
import { TestCluster, randomBody, viewerCredential } from './harness.js'
import { ASSET_NAMES, asset, WATCH_CSP } from '../../lib/watch/assets.js'

/**
 * What a watch page on another origin needs from the router, and the router's
 * own watch page: /v1/play, /v1/sessions and /v1/history answer with CORS
 * (errors too) and take preflights without a credential; GET /watch/{id}
 * serves lib/watch's page with its CSP for a title that exists, and
 * /assets/{name} the project's own hls.js, dash.js and watch.js with strong
 * ETags and caching. A single-file title is enough here: the page's HTML does
 * not depend on the kind (abr-watch-browser plays an adaptive one).
 */
const ORIGIN = 'http://edge.example:8080'
const c = await TestCluster.start(t)
t.equal((await c.ingest('single', randomBody(1000), { meta: { title: 'Single' } })).status, 201)
const send = async (path: string, o: { method?: 'GET' | 'HEAD' | 'OPTIONS' | 'PUT'; headers?: Record<string, string>; body?: string } = {}) => {
  const r = await request(`${c.url}${path}`, { method: o.method ?? 'GET', headers: { origin: ORIGIN, ...o.headers }, ...(o.body ? { body: o.body } : {}) })
  const body = Buffer.from(await r.body.arrayBuffer())
  return { status: r.statusCode, headers: r.headers, body, text: body.toString('utf8') }
}

t.test('/v1/play, sessions and history answer a page of another origin, errors included', async t => {
  const play = await send(`/v1/play/single?viewer=${viewerCredential('ann')}`)
  t.equal(play.status, 200)
  t.equal(play.headers['access-control-allow-origin'], '*')
  t.match(play.headers['access-control-expose-headers'], /ETag/)
  const token = JSON.parse(play.text).token as string
  const missing = await send('/v1/play/nosuch')
  t.equal(missing.status, 404)
  t.equal(missing.headers['access-control-allow-origin'], '*', 'a 404 is readable by the page')
  t.match(missing.text, /nosuch/)
  const put = await send('/v1/sessions/single', { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ position: 500 }) })
  t.equal(put.status, 200)
  t.equal(put.headers['access-control-allow-origin'], '*')
  const resume = await send('/v1/sessions/single', { headers: { authorization: `Bearer ${token}` } })
  t.equal(resume.status, 200)
  t.equal(resume.headers['access-control-allow-origin'], '*')
  const refused = await send('/v1/sessions/single')
  t.equal(refused.status, 403)
  t.match(refused.text, /missing token/)
  t.equal(refused.headers['access-control-allow-origin'], '*', 'a refusal is readable by the page')
  const history = await send(`/v1/history?token=${token}`)
  t.equal(history.status, 200)
  t.equal(history.headers['access-control-allow-origin'], '*')
  t.match(JSON.parse(history.text).history, [{ contentId: 'single', position: 500 }])
})

t.test('preflights need no credential and allow what each route takes from a page', async t => {
  const ask = (path: string, method: string, headers: string) => send(path, { method: 'OPTIONS',
    headers: { 'access-control-request-method': method, 'access-control-request-headers': headers } })
  for (const path of ['/v1/play/single', '/v1/history']) {
    const p = await ask(path, 'GET', 'authorization')
    t.equal(p.status, 204, path)
    t.equal(p.headers['access-control-allow-origin'], '*')
    t.match(p.headers['access-control-allow-methods'], /GET/)
    t.notMatch(p.headers['access-control-allow-methods'], /PUT/)
    t.match(p.headers['access-control-allow-headers'], /Authorization/)
  }
  const s = await ask('/v1/sessions/single', 'PUT', 'authorization, content-type')
  t.equal(s.status, 204)
  t.match(s.headers['access-control-allow-methods'], /PUT/)
  t.match(s.headers['access-control-allow-headers'], /Content-Type/)
  t.match(s.headers.allow, /PUT/)
})

t.test('the watch page: lib/watch\'s HTML asking this router\'s /v1/play, with its CSP, for a title that exists', async t => {
  const page = await send('/watch/single')
  t.equal(page.status, 200)
  t.equal(page.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(page.headers['content-security-policy'], WATCH_CSP)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.equal(page.headers['cache-control'], 'no-cache')
  t.match(page.text, /data-watch="\{&#34;contentId&#34;:&#34;single&#34;,&#34;playApi&#34;:&#34;&#34;,&#34;service&#34;:&#34;router&#34;\}"/)
  for (const name of ASSET_NAMES) t.match(page.text, `<script src="/assets/${name}"></script>`)
  const again = await send('/watch/single', { headers: { 'if-none-match': String(page.headers.etag) } })
  t.equal(again.status, 304, 'revalidated by its ETag')
  const head = await send('/watch/single', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(Number(head.headers['content-length']), page.body.length)
  const unknown = await send('/watch/nosuch')
  t.equal(unknown.status, 404)
  t.match(unknown.text, /nosuch/)
  t.notMatch(unknown.headers['content-type'], /html/)
  const bad = await send('/watch/a%22%3E%3Cscript%3E')
  t.equal(bad.status, 400, 'an id that could not be a title is refused, never echoed into HTML')
})

t.test('the assets: the project\'s own hls.js and dash.js and the page\'s script, cached and revalidated by strong ETags', async t => {
  const require = createRequire(import.meta.url)
  const want: Record<string, Buffer> = {
    'hls.min.js': readFileSync(require.resolve('hls.js/dist/hls.min.js')),
    'dash.all.min.js': readFileSync(require.resolve('dashjs')),
    'watch.js': asset('watch.js')!.body,
  }
  t.same(ASSET_NAMES.slice().sort(), Object.keys(want).sort())
  for (const [name, bytes] of Object.entries(want)) {
    const r = await send(`/assets/${name}`)
    t.equal(r.status, 200, name)
    t.ok(r.body.equals(bytes), `${name}: the installed file's bytes`)
    t.equal(r.headers['content-type'], 'text/javascript; charset=utf-8')
    t.equal(r.headers['cache-control'], 'public, max-age=3600')
    t.equal(r.headers.etag, asset(name)!.etag)
    t.equal((await send(`/assets/${name}`, { headers: { 'if-none-match': asset(name)!.etag } })).status, 304)
  }
  t.ok(want['hls.min.js']!.length > 100_000, 'hls.js itself, not a stub')
  const unknown = await send('/assets/jquery.js')
  t.equal(unknown.status, 404)
  t.match(unknown.text, /jquery\.js.*hls\.min\.js, dash\.all\.min\.js, watch\.js/)
  t.equal((await send('/assets/..%2Fpackage.json')).status, 404, 'no file outside the list')
  t.equal((await send('/assets/__proto__')).status, 404)
})
