import t from 'tap'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ffmpeg } from '../helpers/ffmpeg.js'
import { makeSource } from '../helpers/abr-sources.js'
import { ingestSetup as setup } from '../helpers/abr-ingest.js'
import { ingestAdaptive } from '../../router/ingest/ingest-adaptive.js'

/**
 * `reelcdn ingest FILE --id X --renditions LADDER` end to end, against a
 * fake router (test/helpers/fake-abr-router.ts: the router's side of the
 * API, docs/abr.md "Ingest", is on another branch): probe, plan, transcode,
 * index, each rendition uploaded with its digest, then one publish with the
 * records; a re-run after a failed upload or an interrupted transcode
 * resumes without redoing finished renditions; a failed transcode publishes
 * nothing. ffmpeg runs through a wrapper that logs each job and can fail or
 * interrupt the one writing a given rendition (test/helpers/abr-ingest.ts).
 * The CLI's own process, interrupted, is abr-ingest-interrupt.test.ts.
 */
t.test('a source becomes an adaptive title: each rendition uploaded with its digest, then the records published; the same command again answers exists at once', async t => {
  const s = await setup(t)
  const file = await makeSource(s.bin, s.dir, 'in.mp4', { seconds: 3 })
  const r = await s.ingest(file, 'abr')
  t.match(r, { status: 'created', contentId: 'abr', renditions: ['v180', 'v144', 'v90', 'a128'] })
  t.same(s.router.requests, ['GET /v1/admin', 'GET /v1/content/abr/meta', ...['v180', 'v144', 'v90', 'a128'].map(x => `PUT /v1/content/abr/renditions/${x}`),
    'PUT /v1/content/abr'], 'the token, the title, each rendition, then one publish')
  const title = s.router.titles.get('abr')!
  t.match(title.meta, { title: 'abr', categories: ['test'], contentType: 'application/vnd.apple.mpegurl' })
  t.same(title.renditions.map(x => `${x.id} ${x.type} ${x.width ?? x.channels}`), ['v180 video 320', 'v144 video 256', 'v90 video 160', 'a128 audio 2'])
  for (const x of title.renditions) t.equal(s.router.stored.get(`abr/${x.id}`), x.sha256, `${x.id}: the record's digest is the uploaded file's`)
  t.same(await s.jobs(), ['v180+v144+v90+a128'], 'one ffmpeg (split)')
  const text = s.log.join('')
  t.match(text, /ladder t for 320x180: v180 320x180 300 kb\/s, v144 256x144 200 kb\/s, v90 160x90 100 kb\/s, a128/)
  t.equal(text.split('\n').filter(l => l.startsWith('transcode ')).length, 1, 'off a terminal: one line for the transcode, when it ends')
  t.equal(text.split('\n').filter(l => l.startsWith('upload ')).length, 4, 'and one per upload')
  t.match(text, new RegExp(`published abr: ${s.router.url}/v1/content/abr/master\\.m3u8`))
  const wd = join(s.dir, 'work', (await readdir(join(s.dir, 'work')))[0]!)
  t.same(await readdir(wd), ['published.json'], 'after the publish only what recognises it is kept')

  s.router.requests.length = 0
  const again = await s.ingest(file, 'abr')
  t.match(again, { status: 'exists', contentId: 'abr' })
  t.same(s.router.requests, ['GET /v1/admin', 'GET /v1/content/abr/meta'], 'nothing uploaded again')
  t.same(await s.jobs(), ['v180+v144+v90+a128'], 'nothing transcoded again')
})

t.test('a failed upload publishes nothing, and the same command then uploads from the work directory without transcoding', async t => {
  const s = await setup(t)
  const file = await makeSource(s.bin, s.dir, 'in.mp4', { seconds: 3 })
  s.router.refuseNext('v144', 503)
  await t.rejects(s.ingest(file, 'abr'), { message: /the router answered 503: refused rendition v144 \(test\); the renditions stay in .*work.*: the same command resumes without transcoding/ })
  t.equal(s.router.titles.size, 0, 'nothing published')
  t.notOk(s.router.requests.includes('PUT /v1/content/abr'))
  const r = await s.ingest(file, 'abr')
  t.equal(r.status, 'created')
  t.same(await s.jobs(), ['v180+v144+v90+a128'], 'transcoded once')
  t.match(s.log.join(''), /not transcoded again: v180, v144, v90, a128/)
})

t.test('a transcode that fails publishes nothing and uploads nothing; nor does a source that is not video', async t => {
  const s = await setup(t, { 'ingest.strategy': 'sequential' })
  const file = await makeSource(s.bin, s.dir, 'in.mp4', { seconds: 3 })
  await writeFile(join(s.dir, 'fail-v90'), '')
  await t.rejects(s.ingest(file, 'abr'), { code: 'CDN_ERR_TRANSCODE', message: /disk full \(simulated\); the work directory .* keeps the finished renditions v180, v144: run the same command again to resume/ })
  const text = join(s.dir, 'notes.mp4')
  await writeFile(text, 'not a video at all\n'.repeat(100))
  await t.rejects(s.ingest(text, 'text'), { code: 'CDN_ERR_BAD_SOURCE' })
  t.same(s.router.requests.filter(x => x.startsWith('PUT')), [], 'no rendition uploaded, nothing published')
  t.equal(s.router.titles.size, 0)
})

t.test('pre-encoded renditions (--renditions-dir, --hls) are uploaded and published as they are, with the records a transcode gives', async t => {
  const s = await setup(t)
  const file = await makeSource(s.bin, s.dir, 'in.mp4', { seconds: 3 })
  const made = await ingestAdaptive(file, { id: 'made', renditions: 't', category: [], router: s.router.url, overrides: s.overrides, out: s.out, keepWorkDir: true },
    { REELCDN_ROUTER_TOKEN: s.router.token })
  t.equal(made.status, 'created')
  const wd = join(s.dir, 'work', (await readdir(join(s.dir, 'work')))[0]!)
  const r = await ingestAdaptive(undefined, { id: 'dir', renditionsDir: wd, category: [], router: s.router.url, overrides: s.overrides, out: s.out },
    { REELCDN_ROUTER_TOKEN: s.router.token })
  t.same(r.renditions, ['a128', 'v144', 'v180', 'v90'], 'ids from the file names')
  t.match(s.log.join(''), /not renditions, ignored: plan\.json, published\.json/)
  const key = (id: string) => s.router.titles.get(id)!.renditions.map(x => `${x.id}:${x.sha256}:${x.codecs}:${x.bandwidth}`).sort()
  t.same(key('dir'), key('made'), 'the same records')
  t.same(await s.jobs(), ['v180+v144+v90+a128'], 'nothing transcoded for the directory')

  // the same renditions repackaged as an HLS fMP4 package (one byte-ranged file each), taken in with --hls
  const pkg = join(s.dir, 'pkg')
  for (const rid of ['v180', 'v90', 'a128']) {
    await mkdir(join(pkg, rid), { recursive: true })
    await ffmpeg(s.bin, ['-i', join(wd, `${rid}.mp4`), '-c', 'copy', '-f', 'hls', '-hls_segment_type', 'fmp4', '-hls_flags', 'single_file',
      '-hls_playlist_type', 'vod', join(pkg, rid, 'index.m3u8')])
  }
  await writeFile(join(pkg, 'master.m3u8'), ['#EXTM3U', '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="main",DEFAULT=YES,URI="a128/index.m3u8"',
    '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,AUDIO="a"', 'v180/index.m3u8',
    '#EXT-X-STREAM-INF:BANDWIDTH=150000,RESOLUTION=160x90,AUDIO="a"', 'v90/index.m3u8', ''].join('\n'))
  const h = await ingestAdaptive(undefined, { id: 'hls', hls: join(pkg, 'master.m3u8'), category: [], router: s.router.url, overrides: s.overrides, out: s.out },
    { REELCDN_ROUTER_TOKEN: s.router.token })
  t.match(h, { status: 'created', renditions: ['v180', 'v90', 'a128'] }, '--hls: ids from what the files hold')
  // video only: ffmpeg's HLS muxer, copying AAC, pads the last audio fragment to whole frames
  t.same(s.router.titles.get('hls')!.renditions.slice(0, 2).map(x => x.segments.durations), ['v180', 'v90'].map(id => s.router.titles.get('made')!.renditions.find(x => x.id === id)!.segments.durations),
    'the same video segments as the files it was packaged from')
  t.same(await s.jobs(), ['v180+v144+v90+a128'], 'nothing transcoded for the package')

  await t.rejects(ingestAdaptive(file, { id: 'x', renditionsDir: wd, category: [], router: s.router.url, overrides: s.overrides, out: s.out }),
    { code: 'CDN_ERR_BAD_ARGS', message: /give one of FILE --renditions LADDER, --renditions-dir DIR or --hls MASTER \(got FILE --renditions, --renditions-dir\)/ })
})
