import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createReadStream } from 'node:fs'
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ensureFfmpeg, ffmpeg } from '../../../test/helpers/ffmpeg.js'
import { importHls } from './hls-import.js'
import { readRenditionsDir } from './renditions-dir.js'
import { sha256File } from './renditions.js'

/**
 * Pre-encoded renditions, taken without transcoding: a directory of CMAF
 * files (`--renditions-dir`) and an HLS fMP4 package (`--hls`, from a path
 * or a URL; separate segments joined, a byte-ranged single file used as it
 * is), each indexed and checked as a ladder; and everything that cannot be
 * used as it is refused by name.
 */
const GOP = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '50', '-keyint_min', '50', '-sc_threshold', '0']
const CMAF = ['-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4']
const video = (size: string, secs = 4) => ['-f', 'lavfi', '-i', `testsrc2=duration=${secs}:size=${size}:rate=25`]
const tone = (secs = 4) => ['-f', 'lavfi', '-i', `sine=duration=${secs}`]

t.test('a directory of renditions: ids from the file names, other files ignored and listed', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir({ 'README.txt': 'made by hand', '.DS_Store': '' })
  await ffmpeg(bin, [...video('320x180'), ...GOP, ...CMAF, join(dir, 'v180.mp4')])
  await ffmpeg(bin, [...video('160x90'), ...GOP, ...CMAF, join(dir, 'v90.cmfv')])
  await ffmpeg(bin, [...tone(), '-c:a', 'aac', '-b:a', '96k', '-frag_duration', '2000000', '-movflags', '+empty_moov+default_base_moof', '-f', 'mp4', join(dir, 'a96.m4a')])
  const d = await readRenditionsDir(dir)
  t.same(d.renditions.map(r => `${r.id} ${r.media.type} ${r.media.codecs}`), ['a96 audio mp4a.40.2', 'v180 video avc1.42c00c', 'v90 video avc1.42c00b'])
  t.same(d.ignored, ['.DS_Store', 'README.txt'])
  t.equal(d.renditions[1]!.sha256, await sha256File(join(dir, 'v180.mp4')))
  t.same(d.renditions[1]!.media.segments.durations.map(x => x / d.renditions[1]!.media.timescale), [2, 2])
})

t.test('a directory that is not a ladder is refused, naming the file and why', async t => {
  const bin = await ensureFfmpeg()
  const root = t.testdir({ empty: { 'notes.txt': 'x' }, file: 'x' })
  const bad = async (dir: string, message: RegExp, what: string) => t.rejects(readRenditionsDir(dir), { code: 'CDN_ERR_BAD_RENDITIONS', message }, what)
  await bad(join(root, 'empty'), /empty holds no rendition files \(.*\); ignored: notes\.txt/, 'no media files')
  await bad(join(root, 'file'), /--renditions-dir .*file is not a directory/, 'a file')
  await bad(join(root, 'none'), /no such directory: .*none/, 'missing')

  const mk = async (name: string, files: Record<string, string[]>) => {
    const d = join(root, name)
    await mkdir(d)
    for (const [f, args] of Object.entries(files)) await ffmpeg(bin, [...args, join(d, f)])
    return d
  }
  await bad(await mk('upper', { 'V180.mp4': [...video('320x180', 2), ...GOP, ...CMAF] }), /V180\.mp4: the file name gives the rendition id "V180", but a rendition id is 1-16 characters of \[a-z0-9_-\]/, 'an id against the rule')
  await bad(await mk('twice', { 'v90.mp4': [...video('160x90', 2), ...GOP, ...CMAF], 'v90.m4v': [...video('160x90', 2), ...GOP, ...CMAF] }), /v90\.m4v and v90\.mp4 are both rendition v90|v90\.mp4 and v90\.m4v are both rendition v90/, 'one id twice')
  await bad(await mk('flat', { 'v90.mp4': [...video('160x90', 2), ...GOP, '-movflags', '+faststart'] }), /rendition v90: .*v90\.mp4: no mvex box in moov: not a fragmented MP4/, 'a progressive MP4')
  await bad(await mk('muxed', { 'v90.mp4': [...video('160x90', 2), ...tone(2), ...GOP, '-c:a', 'aac', ...CMAF] }), /rendition v90: .*holds one track; this one holds 2/, 'audio and video in one file')
  await bad(await mk('unaligned', {
    'v180.mp4': [...video('320x180'), ...GOP, ...CMAF],
    'v90.mp4': [...video('160x90'), ...GOP.slice(0, -6), '-g', '75', '-keyint_min', '75', '-sc_threshold', '0', ...CMAF],
  }), /video renditions v180 and v90 have .*: their keyframes are not aligned/, 'keyframes at other times')
})

/** ffmpeg's HLS muxer, fMP4 segments: separate files, or one file with byte ranges. */
async function hlsPackage(bin: string, root: string, segType = 'fmp4'): Promise<string> {
  const hls = (dir: string, more: string[]) => ['-f', 'hls', '-hls_segment_type', segType, '-hls_time', '2', '-hls_playlist_type', 'vod',
    ...(segType === 'fmp4' ? ['-hls_fmp4_init_filename', 'init.mp4'] : []), ...more, join(root, dir, 'index.m3u8')]
  for (const d of ['v180', 'v90', 'audio']) await mkdir(join(root, d), { recursive: true })
  const ext = segType === 'fmp4' ? 'm4s' : 'ts'
  await ffmpeg(bin, [...video('320x180'), ...GOP, ...hls('v180', ['-hls_segment_filename', join(root, 'v180', `seg%d.${ext}`)])])
  await ffmpeg(bin, [...video('160x90'), ...GOP, ...hls('v90', ['-hls_flags', 'single_file'])])
  await ffmpeg(bin, [...tone(), '-c:a', 'aac', '-b:a', '64k', ...hls('audio', ['-hls_segment_filename', join(root, 'audio', `a%d.${ext}`)])])
  await writeFile(join(root, 'master.m3u8'), ['#EXTM3U', '#EXT-X-VERSION:7',
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="main",DEFAULT=YES,URI="audio/index.m3u8"',
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="commentary",DEFAULT=NO,URI="audio/index.m3u8"',
    '#EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=320x180,AUDIO="a"', 'v180/index.m3u8',
    '#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x90,AUDIO="a"', 'v90/index.m3u8', ''].join('\n'))
  return join(root, 'master.m3u8')
}

/** A static file server with single byte ranges, like any CDN in front of an HLS package. */
async function serve(t: { teardown(fn: () => unknown): void }, root: string): Promise<string> {
  const server = http.createServer(async (req, res) => {
    const path = join(root, decodeURIComponent(new URL(req.url!, 'http://x').pathname))
    let size: number
    try { size = (await stat(path)).size } catch { return void res.writeHead(404).end() }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    if (m) {
      res.writeHead(206, { 'content-range': `bytes ${m[1]}-${m[2]}/${size}`, 'content-length': Number(m[2]) - Number(m[1]) + 1 })
      createReadStream(path, { start: Number(m[1]), end: Number(m[2]) }).pipe(res)
    } else {
      res.writeHead(200, { 'content-length': size })
      createReadStream(path).pipe(res)
    }
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('an HLS fMP4 package, from a path and from a URL: one file per rendition, the default audio, ids from what the files hold', async t => {
  const bin = await ensureFfmpeg()
  const root = t.testdir()
  const master = await hlsPackage(bin, join(root, 'pkg'))
  const lines: string[] = []
  const a = await importHls(master, join(root, 'work'), l => lines.push(l))
  t.same(a.renditions.map(r => `${r.id} ${r.media.type}`), ['v180 video', 'v90 video', 'a64 audio'])
  t.same(a.ignored, ['audio commentary'])
  t.match(lines.join('\n'), /variant v180\/index\.m3u8: init and 2 segments, joined[^]*variant v90\/index\.m3u8: one file, copied whole/)
  const v180 = await readFile(a.renditions[0]!.path)
  const parts = await Promise.all(['init.mp4', 'seg0.m4s', 'seg1.m4s'].map(f => readFile(join(root, 'pkg', 'v180', f))))
  t.ok(v180.equals(Buffer.concat(parts)), 'separate segments: the init, then every segment, in order')
  t.ok((await readFile(a.renditions[1]!.path)).equals(await readFile(join(root, 'pkg', 'v90', 'index.m4s'))), 'a byte-ranged single file: as it is')
  t.same(a.renditions[0]!.media.segments.durations.map(d => d / a.renditions[0]!.media.timescale), [2, 2])

  const url = await serve(t, join(root, 'pkg'))
  const b = await importHls(`${url}/master.m3u8`, join(root, 'work2'))
  t.same(b.renditions.map(r => r.sha256), a.renditions.map(r => r.sha256), 'over HTTP: the same files')
  await a.workDir.clear()
  await b.workDir.clear()
  await t.rejects(importHls(`${url}/nope.m3u8`, join(root, 'work3')), { code: 'CDN_ERR_BAD_RENDITIONS', message: /nope\.m3u8 answered 404/ })
  await t.rejects(importHls(join(root, 'nope.m3u8'), join(root, 'work3')), { code: 'CDN_ERR_BAD_RENDITIONS', message: /no such file: .*nope\.m3u8/ })
})

t.test('an HLS package of MPEG-TS segments is refused with what to do instead', async t => {
  const bin = await ensureFfmpeg()
  const root = t.testdir()
  const master = await hlsPackage(bin, join(root, 'pkg'), 'mpegts')
  await t.rejects(importHls(master, join(root, 'work')), {
    code: 'CDN_ERR_BAD_RENDITIONS',
    message: /v180\/index\.m3u8 has no EXT-X-MAP: its segments are MPEG-TS, and only fMP4\/CMAF packages can be ingested as they are \(repackage with ffmpeg -hls_segment_type fmp4, or ingest the source with --renditions\)/,
  })
  // a variant with its audio muxed in: one track per rendition
  await rename(join(root, 'pkg', 'master.m3u8'), join(root, 'pkg', 'old.m3u8'))
  await mkdir(join(root, 'pkg', 'mux'))
  await ffmpeg(bin, [...video('160x90', 2), ...tone(2), ...GOP, '-c:a', 'aac', '-f', 'hls', '-hls_segment_type', 'fmp4', '-hls_playlist_type', 'vod', '-hls_fmp4_init_filename', 'init.mp4', join(root, 'pkg', 'mux', 'index.m3u8')])
  await writeFile(join(root, 'pkg', 'master.m3u8'), '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000\nmux/index.m3u8\n')
  await t.rejects(importHls(join(root, 'pkg', 'master.m3u8'), join(root, 'work')), { code: 'CDN_ERR_BAD_RENDITIONS', message: /mux\/index\.m3u8 \(variant mux\/index\.m3u8\): .*holds one track; this one holds 2/ })
})
