import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { EDGE_TOKEN, TestCluster, TOKEN, randomBody, viewerCredential } from './harness.js'
import { ingestLadder, makeLadder, segmentRanges } from '../helpers/abr.js'
import { masterPlaylist, mediaPlaylist } from '../../lib/media/hls.js'
import { mpd } from '../../lib/media/dash.js'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import { parseManifest } from '../../lib/manifest.js'

/**
 * An adaptive title read through the router: a real two-rung ladder with
 * audio, uploaded and published with the router's API, then its playlists,
 * rendition files, rendition chunks, catalog entry and play answer — each
 * compared with what lib/media generates from the stored manifest and with
 * the files' own bytes — and every wrong request named.
 */
const CS = 65536

const c = await TestCluster.start(t, { chunkSize: CS })
const dir = join(c.dir, 'ladder')
await mkdir(dir, { recursive: true })
const files = await makeLadder(dir)
const bytesOf = new Map(files.map(f => [f.id, f.bytes]))
const pub = await ingestLadder(c.url, 'abr', files, TOKEN, { title: 'A ladder', categories: ['test'] })
await c.ingest('single', randomBody(2 * CS))
const man = parseManifest(JSON.parse((await c.get('/v1/content/abr/meta')).body.toString()))
const text = async (path: string, headers: Record<string, string> = {}) => {
  const r = await c.get(path, headers)
  return { ...r, text: r.body.toString('utf8'), json: r.headers['content-type']?.toString().startsWith('application/json') ? JSON.parse(r.body.toString()) : undefined }
}

t.test('the publish answers the ladder; the manifest holds the records in id order and an empty file of its own', async t => {
  t.equal(pub.publish.status, 201)
  t.match(pub.publish.json, { status: 'created', contentId: 'abr', adaptive: true, size: 0, chunks: 0 })
  t.match(pub.publish.json.version, /^[0-9a-f]{16}$/)
  t.same(pub.publish.json.renditions.map((r: any) => r.id), ['a64', 'v180', 'v90'])
  t.equal(man.version, pub.publish.json.version)
  t.same(man.renditions, [...pub.records].sort((a, b) => (a.id < b.id ? -1 : 1)), 'the records as sent, in id order')
  t.equal(man.size, 0)
  t.same(man.chunks, [])
  t.equal(man.contentType, 'application/vnd.apple.mpegurl')
  t.equal(man.title, 'A ladder')
  t.ok(man.renditions!.find(r => r.id === 'v180')!.chunks.length > 2, 'the top rung spans several chunks')
})

t.test('playlists are byte-identical to lib/media\'s from the stored manifest, with their types, ETag, CORS and conditionals', async t => {
  const rs = man.renditions!
  const want: [string, string, string][] = [['master.m3u8', masterPlaylist(rs), 'application/vnd.apple.mpegurl'],
    ['manifest.mpd', mpd(rs), 'application/dash+xml'], ...rs.map(r => [`${r.id}.m3u8`, mediaPlaylist(r), 'application/vnd.apple.mpegurl'] as [string, string, string])]
  for (const [name, body, type] of want) {
    const r = await text(`/v1/content/abr/${name}`)
    t.equal(r.status, 200, name)
    t.equal(r.text, body, `${name} is lib/media's`)
    t.equal(r.headers['content-type'], type)
    t.equal(r.headers.etag, `"${man.version}"`, 'ETag: the ladder\'s version')
    t.equal(r.headers['access-control-allow-origin'], '*')
    t.match(r.headers['cache-control'], /^max-age=\d+$/)
    t.equal((await c.get(`/v1/content/abr/${name}`, { 'if-none-match': `"${man.version}"` })).status, 304)
    const head = await c.get(`/v1/content/abr/${name}`, {}, 'HEAD')
    t.equal(head.status, 200)
    t.equal(Number(head.headers['content-length']), Buffer.byteLength(body))
    t.equal(head.body.length, 0)
  }
  const pre = await request(`${c.url}/v1/content/abr/master.m3u8`, { method: 'OPTIONS', headers: { origin: 'https://player.example', 'access-control-request-headers': 'range' } })
  await pre.body.dump()
  t.equal(pre.statusCode, 204, 'a CORS preflight needs no credential')
  t.match(String(pre.headers['access-control-allow-headers']), /Range/)
})

t.test('every segment byte range the playlists name, read through the router, is the file\'s bytes', async t => {
  let ranges = 0
  for (const r of man.renditions!) {
    const file = bytesOf.get(r.id)!
    // the ranges as the media playlist gives them to a player
    const media = (await text(`/v1/content/abr/${r.id}.m3u8`)).text
    const named = [...media.matchAll(/BYTERANGE[:=]"?(\d+)@(\d+)/g)].map(m => [Number(m[2]), Number(m[2]) + Number(m[1]) - 1])
    t.same(named, segmentRanges(r), `${r.id}: the playlist's ranges tile the file`)
    for (const [s, e] of named) {
      const got = await c.get(`/v1/content/abr/${r.id}.mp4`, { range: `bytes=${s}-${e}` })
      t.equal(got.status, 206)
      if (!got.body.equals(file.subarray(s!, e! + 1))) t.fail(`${r.id} bytes ${s}-${e} differ`)
      ranges++
    }
    const whole = await c.get(`/v1/content/abr/${r.id}.mp4`)
    t.equal(whole.status, 200)
    t.ok(whole.body.equals(file), `${r.id}: the whole file`)
    t.equal(whole.headers.etag, `"${r.sha256}"`, 'ETag: the file\'s SHA-256')
    t.equal(whole.headers['content-type'], r.contentType)
    t.equal(whole.headers['accept-ranges'], 'bytes')
  }
  t.ok(ranges > 10, `${ranges} ranges compared`)
  const v = man.renditions!.find(r => r.id === 'v180')!
  const file = bytesOf.get('v180')!
  const multi = await c.get('/v1/content/abr/v180.mp4', { range: `bytes=0-9,${CS - 5}-${CS + 4}` })
  t.equal(multi.status, 206)
  t.match(multi.headers['content-type'], /^multipart\/byteranges; boundary=/)
  t.ok(multi.body.includes(file.subarray(CS - 5, CS + 5)), 'a part across a chunk boundary')
  t.equal((await c.get('/v1/content/abr/v180.mp4', { 'if-none-match': `"${v.sha256}"` })).status, 304)
  t.equal((await c.get('/v1/content/abr/v180.mp4', { 'if-match': '"other"' })).status, 412)
  const ifRange = await c.get('/v1/content/abr/v180.mp4', { range: 'bytes=0-9', 'if-range': '"other"' })
  t.equal(ifRange.status, 200, 'If-Range with another tag: the whole file')
  t.equal((await c.get('/v1/content/abr/v180.mp4', { range: `bytes=${v.size}-` })).status, 416)
})

t.test('rendition chunks and their block lists, as edges fill them', async t => {
  for (const r of man.renditions!) {
    const file = bytesOf.get(r.id)!
    for (let i = 0; i < r.chunks.length; i++) {
      const chunk = await c.get(`/v1/content/abr/r/${r.id}/chunks/${i}`)
      t.equal(chunk.status, 200)
      t.ok(chunk.body.equals(file.subarray(i * CS, (i + 1) * CS)), `${r.id} chunk ${i}`)
      t.equal(chunk.headers.etag, `"${r.chunks[i]}"`)
      t.equal(chunk.headers['reelcdn-version'], r.version)
      const crcs = await c.get(`/v1/content/abr/r/${r.id}/chunks/${i}/crcs`)
      t.ok(crcs.body.equals(blockCrcs(file.subarray(i * CS, (i + 1) * CS))), `${r.id} chunk ${i}'s block list`)
    }
  }
  const part = await c.get('/v1/content/abr/r/v180/chunks/1', { range: 'bytes=100-199' })
  t.equal(part.status, 206)
  t.ok(part.body.equals(bytesOf.get('v180')!.subarray(CS + 100, CS + 200)))
})

t.test('a wrong request is named: a single-file read of a ladder, a playlist of a single file, an unknown rendition or file', async t => {
  const whole = await text('/v1/content/abr')
  t.equal(whole.status, 404)
  t.equal(whole.json.error.code, 'CDN_ERR_ADAPTIVE')
  t.match(whole.json.error.message, /\/v1\/content\/abr\/master\.m3u8 \(HLS\) or \/v1\/content\/abr\/manifest\.mpd \(DASH\)/)
  t.equal(whole.headers['access-control-allow-origin'], '*', 'readable by a script player')
  t.equal((await text('/v1/content/abr/chunks/0')).json.error.code, 'CDN_ERR_ADAPTIVE')
  t.equal((await text('/v1/content/abr/chunks/0/crcs')).json.error.code, 'CDN_ERR_ADAPTIVE')
  for (const name of ['master.m3u8', 'manifest.mpd', 'v180.m3u8', 'v180.mp4']) {
    const r = await text(`/v1/content/single/${name}`)
    t.equal(r.status, 404)
    t.equal(r.json.error.code, 'CDN_ERR_NOT_ADAPTIVE', name)
    t.match(r.json.error.message, /play \/v1\/content\/single$/)
  }
  t.equal((await text('/v1/content/single/r/v180/chunks/0')).json.error.code, 'CDN_ERR_NOT_ADAPTIVE')
  for (const path of ['/v1/content/abr/v720.m3u8', '/v1/content/abr/v720.mp4', '/v1/content/abr/r/v720/chunks/0']) {
    const r = await text(path)
    t.equal(r.status, 404)
    t.match(r.json.error.message, /rendition v720 of abr \(its renditions: a64, v180, v90\)/, path)
  }
  const odd = await text('/v1/content/abr/notes.txt')
  t.equal(odd.status, 404)
  t.match(odd.json.error.message, /file "notes\.txt" of abr \(an adaptive title has master\.m3u8, manifest\.mpd/)
  t.match((await text('/v1/content/abr/r/v90/chunks/99')).json.error.message, /chunk 99 of abr\/v90 \(it has \d+\)/)
  t.equal((await text('/v1/content/nope/master.m3u8')).status, 404)
  t.equal((await text('/v1/content/single')).status, 200, 'a single-file title reads as before')
})

t.test('the catalog lists the ladder: adaptive, its rendition ids and its duration; single files as before', async t => {
  const items = (await text('/v1/content')).json.items
  const abr = items.find((i: any) => i.contentId === 'abr')
  t.match(abr, { adaptive: true, renditions: ['a64', 'v180', 'v90'], size: 0, title: 'A ladder', contentType: 'application/vnd.apple.mpegurl' })
  t.ok(Math.abs(abr.duration - 6) < 0.1, `duration ${abr.duration}`)
  const single = items.find((i: any) => i.contentId === 'single')
  t.notOk('adaptive' in single)
  t.notOk('renditions' in single)
})

t.test('/v1/play: each URL with the tokened master and MPD; a single file\'s answer as before; positions in ms', async t => {
  const play = (await text('/v1/play/abr')).json
  t.equal(play.adaptive, true)
  const o = play.urls.at(-1)
  t.equal(o.id, 'origin')
  t.equal(o.hls, `${c.url}/v1/content/abr/t/${play.token}/master.m3u8`)
  t.equal(o.dash, `${c.url}/v1/content/abr/t/${play.token}/manifest.mpd`)
  t.equal(o.url, o.hls)
  t.equal((await request(o.hls)).statusCode, 200)
  const single = (await text('/v1/play/single')).json
  t.notOk('adaptive' in single)
  t.same(Object.keys(single.urls[0]).sort(), ['id', 'kind', 'url'])
  t.equal(single.urls[0].url, `${c.url}/v1/content/single?token=${single.token}`)
  // a session of an adaptive title is kept in milliseconds from its start
  const viewer = (await text(`/v1/play/abr?viewer=${viewerCredential('ann')}`)).json
  const put = async (position: number) => {
    const r = await request(`${c.url}/v1/sessions/abr?token=${viewer.token}`, { method: 'PUT', body: JSON.stringify({ position }) })
    return { status: r.statusCode, json: await r.body.json() as any }
  }
  t.equal((await put(4000)).status, 200)
  const bad = await put(60_000)
  t.equal(bad.status, 400)
  t.match(bad.json.error.message, /milliseconds from the start of this adaptive title from 0 to 6\d{3}/)
  const got = (await text(`/v1/sessions/abr?token=${viewer.token}`)).json
  t.match(got, { position: 4000, contentId: 'abr' })
  const history = (await text(`/v1/history?token=${viewer.token}`)).json.history
  t.match(history, [{ contentId: 'abr', position: 4000 }], 'in the viewer\'s history')
  t.ok(Math.abs(history[0].size - 6000) < 100, `its size is the duration in ms: ${history[0].size}`)
  t.ok((await text('/v1/trending/state', { authorization: `Bearer ${EDGE_TOKEN}` })).json.state['abr#13'], 'the position counted in its slice of the duration')
})

t.test('published: the same ladder again is exists, another is a 409; so is a rendition upload', async t => {
  const again = await ingestLadder(c.url, 'abr', files, TOKEN)
  t.equal(again.publish.status, 200)
  t.equal(again.publish.json.status, 'exists')
  t.equal(again.publish.json.version, man.version)
  const other = await ingestLadder(c.url, 'abr', files.filter(f => f.id !== 'v90'), TOKEN).catch((err: Error) => err)
  t.match(String(other), /publish: 409 .*published with another ladder/)
  const single = await ingestLadder(c.url, 'single', files, TOKEN).catch((err: Error) => err)
  t.match(String(single), /rendition v180 upload: 409 .*published as a single file/)
  t.equal((await c.ingest('abr', Buffer.alloc(0))).status, 409, 'an empty single file under a ladder\'s id is not the ladder')
})
