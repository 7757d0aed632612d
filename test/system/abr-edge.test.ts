import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { adaptiveManifest, ladderFiles, makeLadder, type LadderFile } from '../helpers/edge-ladder.js'
import { get, metric, settled, startTestEdge, until } from '../helpers/edge.js'
import { titleBytes } from '../helpers/titles.js'
import { masterPlaylist, mediaPlaylist } from '../../lib/media/hls.js'
import { mpd } from '../../lib/media/dash.js'
import { segmentOffsets, type Rendition } from '../../lib/media/rendition.js'
import type { Manifest } from '../../lib/manifest.js'

/**
 * An adaptive title through the edge (issue 15, docs/abr.md): a real two-rung
 * ladder with audio, chunked at 64 KiB so every rendition spans several chunks,
 * behind the fake upstream. Playlists are the manifest's own (byte-identical to
 * lib/media's), every init and media segment of every rendition comes back
 * byte-exact cold, from RAM and from disk after a restart, concurrent players
 * cost one upstream fetch per chunk, and ffmpeg reads the master through the edge.
 */
const CS = 64 * 1024
const run = promisify(execFile)

/** Every byte range a player reads of a rendition: its init segment, then each media segment. */
function segmentRanges(r: Rendition): [number, number][] {
  const at = segmentOffsets(r)
  return [[0, r.init - 1], ...at.slice(0, -1).map((s, i): [number, number] => [s, at[i + 1]! - 1])]
}

async function setup(t: Test): Promise<{ up: FakeUpstream; ladder: LadderFile[]; man: Manifest & { renditions: Rendition[] } }> {
  const ladder = await makeLadder()
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const man = adaptiveManifest('abr', ladder, CS) as Manifest & { renditions: Rendition[] }
  up.addAdaptive(man, ladderFiles(ladder))
  return { up, ladder, man }
}

/** Reads every segment of every rendition; fails on any byte that differs. */
async function readAll(t: Test, base: string, man: Manifest & { renditions: Rendition[] }, ladder: LadderFile[], what: string): Promise<void> {
  let bad = 0
  for (const r of man.renditions) {
    const bytes = ladder.find(f => f.id === r.id)!.bytes
    for (const [s, e] of segmentRanges(r)) {
      const got = await get(`${base}/v1/content/abr/${r.id}.mp4`, { range: `bytes=${s}-${e}` })
      if (got.status !== 206 || !got.body.equals(bytes.subarray(s, e + 1)) || got.headers['content-range'] !== `bytes ${s}-${e}/${r.size}`) {
        bad++
        t.fail(`${what}: ${r.id} bytes=${s}-${e}: ${got.status}, ${got.body.length} bytes, ${got.headers['content-range']}`)
      }
    }
  }
  t.equal(bad, 0, `${what}: every segment of every rendition byte-exact`)
}

t.test('playlists are the manifest\'s, with their types, the version as ETag, conditionals and CORS', async t => {
  const { up, man } = await setup(t)
  const edge = await startTestEdge(t, up)
  const base = `${edge.url}/v1/content/abr`
  const master = await get(`${base}/master.m3u8`)
  t.equal(master.status, 200)
  t.equal(master.body.toString('utf8'), masterPlaylist(man.renditions), 'the master playlist, byte for byte')
  t.match(master.headers, { 'content-type': 'application/vnd.apple.mpegurl', etag: `"${man.version}"`, 'access-control-allow-origin': '*',
    'cache-control': 'public, max-age=60' })
  t.match(String(master.headers['access-control-expose-headers']), /Content-Range/)
  for (const r of man.renditions) {
    const media = await get(`${base}/${r.id}.m3u8`)
    t.equal(media.body.toString('utf8'), mediaPlaylist(r), `${r.id}.m3u8, byte for byte`)
  }
  const dash = await get(`${base}/manifest.mpd`)
  t.equal(dash.body.toString('utf8'), mpd(man.renditions), 'the MPD, byte for byte')
  t.equal(dash.headers['content-type'], 'application/dash+xml')
  t.equal((await get(`${base}/master.m3u8`, { 'if-none-match': `"${man.version}"` })).status, 304, 'revalidated by the version')
  const head = await get(`${base}/manifest.mpd`, {}, 'HEAD')
  t.equal(head.status, 200)
  t.equal(Number(head.headers['content-length']), dash.body.length)
  const pre = await get(`${base}/master.m3u8`, { origin: 'https://player.example', 'access-control-request-method': 'GET',
    'access-control-request-headers': 'range' }, 'OPTIONS')
  t.equal(pre.status, 204, 'CORS preflight')
  t.match(String(pre.headers['access-control-allow-headers']), /Range/)
  const meta = await get(`${base}/meta`)
  t.same(JSON.parse(meta.body.toString('utf8')), man, 'the manifest, renditions included')
  t.equal(await metric(edge.url, 'reelcdn_edge_playlists_total', { kind: 'media' }), man.renditions.length)
  t.equal(await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'chunk' }), 0, 'playlists cost no chunk fetch')
})

t.test('the wrong file for the title is a clear 404; a single-file title is unchanged', async t => {
  const { up } = await setup(t)
  const body = titleBytes(3 * CS + 77, 'single')
  await up.addTitle('single', body, { chunkSize: CS, blocks: true })
  const edge = await startTestEdge(t, up)
  const err = async (path: string) => {
    const r = await get(`${edge.url}${path}`)
    return { status: r.status, code: (JSON.parse(r.body.toString('utf8')) as { error: { code: string; message: string } }).error.code,
      message: (JSON.parse(r.body.toString('utf8')) as { error: { message: string } }).error.message }
  }
  t.match(await err('/v1/content/abr'), { status: 404, code: 'CDN_ERR_ADAPTIVE', message: /\/v1\/content\/abr\/master\.m3u8/ })
  t.match(await err('/v1/content/single/master.m3u8'), { status: 404, code: 'CDN_ERR_NOT_ADAPTIVE', message: /play \/v1\/content\/single$/ })
  t.match(await err('/v1/content/single/v360.mp4'), { status: 404, code: 'CDN_ERR_NOT_ADAPTIVE' })
  t.match(await err('/v1/content/abr/v999.mp4'), { status: 404, code: 'CDN_ERR_NOT_FOUND', message: /rendition v999 of abr \(it has v360, v180, a64\)/ })
  t.match(await err('/v1/content/abr/v999.m3u8'), { status: 404, code: 'CDN_ERR_NOT_FOUND' })
  t.match(await err('/v1/content/abr/index.html'), { status: 404, code: 'CDN_ERR_NOT_FOUND', message: /master\.m3u8/ })
  t.match(await err('/v1/content/abr/t//master.m3u8'), { status: 404 })
  const whole = await get(`${edge.url}/v1/content/single`)
  t.equal(whole.status, 200)
  t.same(whole.body, body, 'a single-file title as before')
  t.equal(up.requests('abr'), 0, 'no error cost a chunk fetch')
  await settled(edge)
})

t.test('every segment is byte-exact cold, from RAM, and from disk after a restart; the cache lists and purges renditions', async t => {
  const { up, ladder, man } = await setup(t)
  const dataDir = mkdtempSync(join(tmpdir(), 'reelcdn-test-abr-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const ADMIN = 'abr-admin'
  const opts = { 'edge.dataDir': dataDir, 'edge.readaheadChunks': 1 }
  let edge = await startTestEdge(t, up, opts, { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  await readAll(t, edge.url, man, ladder, 'cold')
  const total = man.renditions.reduce((n, r) => n + r.chunks.length, 0)
  t.equal(up.requests('abr'), total, 'each chunk of each rendition fetched once (readahead included)')
  const chunksOf = (type: string) => man.renditions.filter(r => r.type === type).reduce((n, r) => n + r.chunks.length, 0)
  t.equal(await metric(edge.url, 'reelcdn_edge_fills_total', { file: 'video', result: 'ok' }), chunksOf('video'), 'a fill per video chunk, counted as such')
  t.equal(await metric(edge.url, 'reelcdn_edge_fills_total', { file: 'audio', result: 'ok' }), chunksOf('audio'), 'a fill per audio chunk')
  t.equal(await metric(edge.url, 'reelcdn_edge_fills_total', { file: 'title' }), 0)
  const coldVideo = await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { file: 'video' })
  t.ok(await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { file: 'video', result: 'miss' }) > 0, 'cold: video bytes from fills')
  await readAll(t, edge.url, man, ladder, 'warm')
  t.equal(up.requests('abr'), total, 'nothing fetched again')
  t.ok(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'ram_hit' }) > 0)
  t.ok(await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { file: 'video' }) > 0, 'video bytes counted as such')
  t.ok(await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { file: 'audio' }) > 0, 'audio bytes counted as such')
  const served = await metric(edge.url, 'reelcdn_edge_bytes_served_total')
  t.equal(await metric(edge.url, 'reelcdn_edge_file_bytes_served_total'), served, 'every byte served is a file\'s')
  for (const result of ['ram_hit', 'disk_hit', 'miss', 'coalesced']) {
    t.equal(await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { result }), await metric(edge.url, 'reelcdn_edge_bytes_served_total', { result }),
      `${result}: the kinds add up to the edge's own figure`)
  }
  const videoHits = await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { file: 'video', result: 'ram_hit' })
  // readahead made some cold reads RAM hits too
  t.ok(videoHits >= await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { file: 'video' }) - coldVideo, 'warm: every video byte a RAM hit')
  await settled(edge)
  await until(() => edge.cache.disk.stats().entries === total, 'every chunk on disk')
  const listed = await get(`${edge.url}/v1/cache?contentId=abr`, { authorization: `Bearer ${ADMIN}` })
  const files = (JSON.parse(listed.body.toString('utf8')) as { title: { files: { file: string; disk: number[] }[] } }).title.files
  t.same(files.map(f => [f.file, f.disk.length]), [['a64', man.renditions[2]!.chunks.length], ['v180', man.renditions[1]!.chunks.length],
    ['v360', man.renditions[0]!.chunks.length]], 'the cache lists each rendition\'s chunks')
  await edge.close()

  // a restart: RAM is empty, the disk tier has every chunk under its rendition's key
  edge = await startTestEdge(t, up, opts, { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  t.equal(edge.cache.disk.stats().entries, total, 'the disk tier recovered every rendition chunk')
  await readAll(t, edge.url, man, ladder, 'after a restart')
  t.equal(up.requests('abr'), total, 'still nothing fetched again')
  t.ok(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' }) > 0, 'served from disk')
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'miss' }), 0)
  await settled(edge)

  const purge = await get(`${edge.url}/v1/cache/abr`, { authorization: `Bearer ${ADMIN}` }, 'DELETE')
  t.equal(purge.status, 200)
  t.equal((JSON.parse(purge.body.toString('utf8')) as { purged: { disk: number } }).purged.disk, total, 'a purge of the title takes its renditions')
  t.equal(edge.cache.disk.stats().entries, 0)
  t.equal(edge.cache.ram.stats().entries, 0)
})

t.test('concurrent players cost one upstream fetch per chunk', async t => {
  const { up, ladder, man } = await setup(t)
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0 })
  const v = man.renditions[0]!
  const bytes = ladder[0]!.bytes
  // the first chunk held until all players have asked: every one of them joins the same fill
  up.hold('abr/v360', 0, 1000)
  const players = Array.from({ length: 8 }, async () => {
    const out: Buffer[] = []
    for (const [s, e] of segmentRanges(v)) out.push((await get(`${edge.url}/v1/content/abr/v360.mp4`, { range: `bytes=${s}-${e}` })).body)
    return Buffer.concat(out)
  })
  await up.held('abr/v360', 0)
  await until(async () => await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'coalesced' }) === 7, 'all eight players to ask')
  up.release('abr/v360', 0)
  for (const got of await Promise.all(players)) t.ok(got.equals(bytes.subarray(0, segmentOffsets(v).at(-1))), 'a player read the whole rendition')
  // a chunk after the last segment's end (the file's trailing index alone, when the encode ends just past a boundary) is never read
  const read = Math.ceil(segmentOffsets(v).at(-1)! / CS)
  for (let i = 0; i < v.chunks.length; i++) t.equal(up.requests('abr/v360', i), i < read ? 1 : 0, `chunk ${i}: ${i < read ? 'one upstream request' : 'none (no segment in it)'}`)
  await settled(edge)
})

t.test('ffprobe reads the HLS master through the edge; ffmpeg decodes the top rung', async t => {
  const { up } = await setup(t)
  const edge = await startTestEdge(t, up)
  const probe = JSON.parse((await run('/usr/bin/ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json',
    `${edge.url}/v1/content/abr/master.m3u8`], { maxBuffer: 16 * 1024 ** 2, timeout: 20_000 })).stdout) as
    { streams: { codec_type: string; height?: number; codec_name: string }[]; format: { duration: string } }
  t.same(probe.streams.filter(s => s.codec_type === 'video').map(s => s.height).sort((a, b) => a! - b!), [180, 360], 'both rungs')
  t.ok(probe.streams.some(s => s.codec_type === 'audio' && s.codec_name === 'aac'), 'the audio rendition')
  t.ok(Math.abs(Number(probe.format.duration) - 8) < 0.2, `duration ${probe.format.duration}`)
  const { stderr } = await run('/usr/bin/ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-stats', '-i', `${edge.url}/v1/content/abr/v360.m3u8`,
    '-f', 'null', '-'], { maxBuffer: 16 * 1024 ** 2, timeout: 30_000 })
  t.match(stderr, /frame=\s*200\b/, 'all 200 frames of the top rung decoded from the edge')
  await settled(edge)
})
