import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { adaptiveManifest, ladderFiles, makeLadder } from '../helpers/edge-ladder.js'
import { get, metric, settled, startTestEdge } from '../helpers/edge.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import type { Manifest } from '../../lib/manifest.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { tamperedSignature } from '../helpers/tamper.js'

/**
 * Play tokens with unmodified players (issue 15): an edge with requireToken
 * serves an adaptive title to a player that has nothing but the master
 * playlist's URL with the token in its path. Every URI a playlist names is
 * resolved against the URL the playlist came from, as hls.js, dash.js and
 * Safari do (`new URL(uri, base)`), and stays under `/t/{token}/`; without a
 * token every file is refused, and the query form still works.
 */
const CS = 64 * 1024
const KEYS = 'k1:abr-edge-tokens-test-key-0123456789'

/** The URIs of an HLS playlist: its URI lines and URI="…" attributes. */
function hlsUris(text: string): string[] {
  const out: string[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (!line.startsWith('#')) out.push(line)
    const m = /URI="([^"]+)"/.exec(line)
    if (m) out.push(m[1]!)
  }
  return out
}

t.test('with tokens required, the master URL alone opens every playlist and segment, and every URL keeps the token', async t => {
  const ladder = await makeLadder()
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const man = adaptiveManifest('abr', ladder, CS) as Manifest & { renditions: Rendition[] }
  up.addAdaptive(man, ladderFiles(ladder))
  await up.addTitle('other', Buffer.alloc(1000, 7), { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.requireToken': true }, { REELCDN_TOKEN_KEYS: KEYS })
  const ring = KeyRing.parse(KEYS)
  const exp = Math.floor(Date.now() / 1000) + 600
  const tok = signToken(ring, { cid: 'abr', exp, vid: 'viewer-1' })
  const masterUrl = `${edge.url}/v1/content/abr/t/${tok}/master.m3u8`
  const inPath = `/v1/content/abr/t/${tok}/`

  const master = await get(masterUrl)
  t.equal(master.status, 200)
  let segments = 0
  for (const uri of hlsUris(master.body.toString('utf8'))) {
    const mediaUrl = new URL(uri, masterUrl)
    t.ok(mediaUrl.pathname.startsWith(inPath), `${uri} resolves under the token`)
    const media = await get(mediaUrl.href)
    t.equal(media.status, 200, `${uri}`)
    const text = media.body.toString('utf8')
    const rid = uri.replace(/\.m3u8$/, '')
    const bytes = ladder.find(f => f.id === rid)!.bytes
    // EXT-X-MAP's BYTERANGE and each segment's EXT-X-BYTERANGE, against the media playlist's own URL
    const ranges = [...text.matchAll(/BYTERANGE[:=]"?(\d+)@(\d+)/g)].map(m => [Number(m[2]), Number(m[2]) + Number(m[1]) - 1] as const)
    const files = hlsUris(text)
    t.equal(files.length, ranges.length)
    for (let i = 0; i < files.length; i++) {
      const fileUrl = new URL(files[i]!, mediaUrl)
      if (!fileUrl.pathname.startsWith(inPath)) t.fail(`${files[i]} resolves outside the token`)
      const [s, e] = ranges[i]!
      const got = await get(fileUrl.href, { range: `bytes=${s}-${e}` })
      if (got.status !== 206 || !got.body.equals(bytes.subarray(s, e + 1))) t.fail(`${fileUrl.pathname} bytes=${s}-${e}: ${got.status}`)
      segments++
    }
  }
  t.equal(segments, man.renditions.reduce((n, r) => n + 1 + r.segments.sizes.length, 0), 'every init and media segment, byte-exact')

  // DASH: each Representation's BaseURL against the MPD's URL
  const mpdUrl = new URL('manifest.mpd', masterUrl)
  const mpd = await get(mpdUrl.href)
  t.equal(mpd.status, 200)
  const bases = [...mpd.body.toString('utf8').matchAll(/<BaseURL>([^<]+)<\/BaseURL>/g)].map(m => new URL(m[1]!, mpdUrl))
  t.equal(bases.length, 3)
  for (const b of bases) {
    t.ok(b.pathname.startsWith(inPath), `${b.pathname} keeps the token`)
    t.equal((await get(b.href, { range: 'bytes=0-99' })).status, 206)
  }

  const refused = async (url: string) => {
    const r = await get(url, { range: 'bytes=0-9' })
    t.equal(r.status, 403, url.replace(edge.url, ''))
    t.equal(r.headers['access-control-allow-origin'], '*', 'a browser player can read the refusal')
    return (JSON.parse(r.body.toString('utf8')) as { error: { message: string } }).error.message
  }
  t.match(await refused(`${edge.url}/v1/content/abr/master.m3u8`), /missing token/)
  t.match(await refused(`${edge.url}/v1/content/abr/v360.mp4`), /missing token/)
  t.match(await refused(`${edge.url}/v1/content/abr/manifest.mpd`), /missing token/)
  t.match(await refused(`${edge.url}/v1/content/other/t/${tok}/master.m3u8`), /another title/)
  const [payload, sig] = tok.split('.')
  const forged = Buffer.from(JSON.stringify({ kid: 'k1', cid: 'abr', exp: exp + 86400, vid: 'viewer-1' })).toString('base64url')
  t.match(await refused(`${edge.url}/v1/content/abr/t/${forged}.${sig}/v360.mp4`), /bad signature/, 'a tampered path token')
  t.match(await refused(`${edge.url}/v1/content/abr/t/${payload}.${tamperedSignature(sig!)}/master.m3u8`), /bad signature/)
  const expired = signToken(ring, { cid: 'abr', exp: Math.floor(Date.now() / 1000) - 1 })
  t.match(await refused(`${edge.url}/v1/content/abr/t/${expired}/v360.mp4`), /expired/)

  // the query form and a bearer, as for single-file titles
  t.equal((await get(`${edge.url}/v1/content/abr/v360.mp4?token=${tok}`, { range: 'bytes=0-9' })).status, 206, 'a query token')
  t.equal((await get(`${edge.url}/v1/content/abr/master.m3u8`, { authorization: `Bearer ${tok}` })).status, 200, 'a bearer token')
  const pre = await get(`${edge.url}/v1/content/abr/t/${tok}/v360.mp4`, { origin: 'https://player.example', 'access-control-request-method': 'GET' }, 'OPTIONS')
  t.equal(pre.status, 204, 'the preflight needs no token')
  t.equal(await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'meta' }), 1, 'refused requests cost no upstream lookup')
  await settled(edge)
})
