import t, { type Test } from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { adaptiveManifest, ladderFiles, makeLadder } from '../helpers/edge-ladder.js'
import { get, settled, startTestEdge, type Got } from '../helpers/edge.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import type { Manifest } from '../../lib/manifest.js'
import type { Rendition } from '../../lib/media/rendition.js'

/**
 * The HTTP contract of every playlist and rendition path of an adaptive title
 * on the edge (issue 15), as a browser player meets it: for the master, the
 * MPD, each media playlist and each rendition file, with the token in the path
 * and without, on the main thread and on serve threads: the content type, CORS
 * on every answer (200, 206, 304, HEAD and errors), a preflight that allows
 * Range, conditionals and Authorization, and conditional requests by ETag (the
 * manifest's version for playlists, the file's SHA-256 for a rendition) and by
 * date. A table, so a path added later without CORS or a type fails here.
 */
const CS = 64 * 1024
const KEYS = 'k1:abr-edge-http-test-key-0123456789abcdef'
const ORIGIN = 'https://player.example'

interface PathCase { name: string; type: string; etag: string; size: number }

function cases(man: Manifest & { renditions: Rendition[] }): PathCase[] {
  const out: PathCase[] = [
    { name: 'master.m3u8', type: 'application/vnd.apple.mpegurl', etag: `"${man.version}"`, size: -1 },
    { name: 'manifest.mpd', type: 'application/dash+xml', etag: `"${man.version}"`, size: -1 },
  ]
  for (const r of man.renditions) {
    out.push({ name: `${r.id}.m3u8`, type: 'application/vnd.apple.mpegurl', etag: `"${man.version}"`, size: -1 })
    out.push({ name: `${r.id}.mp4`, type: r.type === 'audio' ? 'audio/mp4' : 'video/mp4', etag: `"${r.sha256}"`, size: r.size })
  }
  return out
}

function corsOk(t: Test, r: Got, what: string, origin: string): void {
  t.equal(r.headers['access-control-allow-origin'], origin, `${what}: ${r.status} carries CORS`)
  const expose = String(r.headers['access-control-expose-headers'])
  if (!/ETag/.test(expose) || !/Content-Range/.test(expose) || !/Content-Length/.test(expose)) t.fail(`${what}: exposes ${expose}`)
}

async function contract(t: Test, base: string, man: Manifest & { renditions: Rendition[] }, origin: string): Promise<void> {
  const o = { origin: ORIGIN }
  for (const c of cases(man)) {
    const url = `${base}/${c.name}`
    const what = url.replace(/\/t\/[^/]+\//, '/t/{token}/').replace(/^http:\/\/[^/]+/, '')
    const full = await get(url, o)
    t.equal(full.status, 200, what)
    t.equal(full.headers['content-type'], c.type, `${what}: its type`)
    t.equal(full.headers.etag, c.etag, `${what}: its ETag`)
    if (c.size >= 0) t.equal(full.body.length, c.size)
    corsOk(t, full, what, origin)
    const lastModified = String(full.headers['last-modified'])
    for (const [h, v] of [['if-none-match', c.etag], ['if-none-match', `W/${c.etag}`], ['if-modified-since', lastModified]] as const) {
      const nm = await get(url, { ...o, [h]: v })
      t.equal(nm.status, 304, `${what}: ${h} ${v.slice(0, 12)}… is 304`)
      t.equal(nm.headers.etag, c.etag)
      corsOk(t, nm, `${what} 304`, origin)
    }
    t.equal((await get(url, { ...o, 'if-none-match': '"other"' })).status, 200, `${what}: another ETag is 200`)
    t.equal((await get(url, { ...o, 'if-match': '"other"' })).status, 412, `${what}: If-Match another is 412`)
    const head = await get(url, o, 'HEAD')
    t.equal(head.status, 200)
    t.equal(Number(head.headers['content-length']), full.body.length, `${what}: HEAD's length`)
    corsOk(t, head, `${what} HEAD`, origin)
    const part = await get(url, { ...o, range: 'bytes=0-9', 'if-range': c.etag })
    t.equal(part.status, 206, `${what}: a range with a matching If-Range`)
    t.equal(part.headers['content-range'], `bytes 0-9/${full.body.length}`)
    t.same(part.body, full.body.subarray(0, 10))
    corsOk(t, part, `${what} 206`, origin)
    t.equal((await get(url, { ...o, range: 'bytes=0-9', 'if-range': '"other"' })).status, 200, `${what}: a stale If-Range gets the whole`)
    const pre = await get(url, { ...o, 'access-control-request-method': 'GET', 'access-control-request-headers': 'range,if-none-match,authorization' }, 'OPTIONS')
    t.equal(pre.status, 204, `${what}: preflight`)
    t.equal(pre.headers['access-control-allow-origin'], origin)
    t.match(String(pre.headers['access-control-allow-methods']), /GET/)
    const allowed = String(pre.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/)
    for (const h of ['range', 'if-range', 'if-none-match', 'if-modified-since', 'authorization']) if (!allowed.includes(h)) t.fail(`${what}: preflight allows no ${h}`)
  }
  for (const bad of ['v999.m3u8', 'v999.mp4', 'index.html']) {
    const r = await get(`${base}/${bad}`, o)
    t.equal(r.status, 404, bad)
    corsOk(t, r, `${bad} 404`, origin)
  }
}

async function setup(t: Test) {
  const ladder = await makeLadder()
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const man = adaptiveManifest('abr', ladder, CS) as Manifest & { renditions: Rendition[] }
  up.addAdaptive(man, ladderFiles(ladder))
  return { up, man }
}

t.test('every playlist and rendition path: type, CORS, preflight and conditionals, plain and tokened', async t => {
  const { up, man } = await setup(t)
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0 })
  await contract(t, `${edge.url}/v1/content/abr`, man, '*')
  const tok = signToken(KeyRing.parse(KEYS), { cid: 'abr', exp: Math.floor(Date.now() / 1000) + 600 })
  const strict = await startTestEdge(t, up, { 'edge.requireToken': true, 'edge.corsOrigin': ORIGIN, 'edge.readaheadChunks': 0 }, { REELCDN_TOKEN_KEYS: KEYS })
  await contract(t, `${strict.url}/v1/content/abr/t/${tok}`, man, ORIGIN)
  t.equal((await get(`${strict.url}/v1/content/abr/master.m3u8`, { origin: ORIGIN })).headers.vary, 'Origin', 'one allowed origin: Vary: Origin')
  const refused = await get(`${strict.url}/v1/content/abr/master.m3u8`, { origin: ORIGIN })
  t.equal(refused.status, 403)
  corsOk(t, refused, 'a refusal', ORIGIN)
  await settled(edge)
  await settled(strict)
})

t.test('the same contract from serve threads', async t => {
  const { up, man } = await setup(t)
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 2, 'edge.readaheadChunks': 0 })
  // read once, so the threads hold the title's metadata and the RAM tier the chunks, and answer from memory
  await contract(t, `${edge.url}/v1/content/abr`, man, '*')
  await contract(t, `${edge.url}/v1/content/abr`, man, '*')
  for (const path of ['/watch/abr', '/assets/watch.js', '/assets/hls.min.js']) t.equal((await get(`${edge.url}${path}`)).status, 200, `${path}, relayed by a thread or not`)
  await settled(edge)
})
