import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ensureFfmpeg, ffmpeg } from '../../test/helpers/ffmpeg.js'
import { indexFmp4File } from './fmp4.js'
import { masterPlaylist, mediaPlaylist, playlistName } from './hls.js'
import { isoDuration, mpd } from './dash.js'
import { checkLadder, type Rendition } from './rendition.js'
import { record } from '../../test/helpers/abr-ladder.js'

/**
 * The playlists of a small real ladder, read by ffmpeg's own HLS and DASH
 * demuxers from files on disk: every stream found with the codecs and sizes
 * the playlists name, and the top rung decoded to the last frame.
 */
const run = promisify(execFile)
t.test('a two-rung ladder with audio: ffmpeg plays the HLS master and the MPD', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const frag = ['-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4']
  const video = (h: number, rate: string, out: string) => ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc2=duration=6:size=640x360:rate=25',
    '-vf', `scale=-2:${h}`, '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', rate, '-g', '50', '-keyint_min', '50', '-sc_threshold', '0',
    '-pix_fmt', 'yuv420p', ...frag, join(dir, out)])
  await video(360, '600k', 'v360.mp4')
  await video(180, '200k', 'v180.mp4')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'sine=duration=6', '-c:a', 'aac', '-b:a', '64k', '-ac', '2', '-frag_duration', '2000000', ...frag, join(dir, 'a64.mp4')])
  const rs = [record('v180', await indexFmp4File(join(dir, 'v180.mp4'))), record('v360', await indexFmp4File(join(dir, 'v360.mp4'))),
    record('a64', await indexFmp4File(join(dir, 'a64.mp4')))]
  t.equal(checkLadder(rs), undefined, 'an aligned ladder')
  const master = masterPlaylist(rs)
  await writeFile(join(dir, 'master.m3u8'), master)
  for (const r of rs) await writeFile(join(dir, playlistName(r)), mediaPlaylist(r))
  await writeFile(join(dir, 'manifest.mpd'), mpd(rs))

  const lines = master.split('\n')
  t.equal(lines[0], '#EXTM3U')
  t.match(master, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="a64\.m3u8"/)
  const inf = lines.filter(l => l.startsWith('#EXT-X-STREAM-INF:'))
  t.equal(inf.length, 2)
  t.match(inf[0], /RESOLUTION=640x360/, 'highest rung first')
  t.match(inf[0], new RegExp(`BANDWIDTH=${rs[1]!.bandwidth + rs[2]!.bandwidth},`), 'video peak + audio peak')
  t.match(inf[0], /CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"/)
  t.match(inf[0], /FRAME-RATE=25\.000/)
  const media = mediaPlaylist(rs[1]!)
  t.match(media, new RegExp(`#EXT-X-MAP:URI="v360\\.mp4",BYTERANGE="${rs[1]!.init}@0"`))
  t.equal(media.match(/#EXTINF:/g)?.length, 3)
  t.match(media, /#EXT-X-TARGETDURATION:2\n/)
  t.ok(media.endsWith('#EXT-X-ENDLIST\n'))

  const probe = async (file: string) => JSON.parse((await run('/usr/bin/ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file],
    { maxBuffer: 16 * 1024 ** 2 })).stdout) as { streams: { codec_type: string; width?: number; height?: number; codec_name: string }[]; format: { duration: string } }
  const hls = await probe(join(dir, 'master.m3u8'))
  t.same(hls.streams.filter(s => s.codec_type === 'video').map(s => s.height).sort(), [180, 360], 'both rungs through HLS')
  t.ok(hls.streams.some(s => s.codec_type === 'audio' && s.codec_name === 'aac'), 'the audio group through HLS')
  t.ok(Math.abs(Number(hls.format.duration) - 6) < 0.2, `HLS duration ${hls.format.duration}`)
  const dash = await probe(join(dir, 'manifest.mpd'))
  t.same(dash.streams.filter(s => s.codec_type === 'video').map(s => s.height).sort(), [180, 360], 'both rungs through DASH')
  t.ok(dash.streams.some(s => s.codec_type === 'audio'), 'audio through DASH')

  // the top rung, decoded through the HLS playlist: every frame
  const { stderr } = await run(bin, ['-hide_banner', '-nostdin', '-v', 'error', '-stats', '-i', join(dir, 'v360.m3u8'), '-f', 'null', '-'],
    { maxBuffer: 16 * 1024 ** 2 })
  t.match(stderr, /frame=\s*150\b/, '150 frames of the top rung decoded from its byte ranges')
})

t.test('xs:duration', async t => {
  t.equal(isoDuration(0), 'PT0S')
  t.equal(isoDuration(6.0001), 'PT6S')
  t.equal(isoDuration(63.25), 'PT1M3.25S')
  t.equal(isoDuration(7200), 'PT2H')
  t.equal(isoDuration(3725.5), 'PT1H2M5.5S')
})

t.test('MPD: a rendition whose first segment starts later than 0 (tfdt) still starts at the Period\'s start: presentationTimeOffset', async t => {
  const H = (c: string) => c.repeat(64)
  const video: Rendition = {
    id: 'v360', type: 'video', version: '0123456789abcdef', size: 4000, sha256: H('a'), chunks: [H('b')], blocks: [H('c')],
    contentType: 'video/mp4', codecs: 'avc1.64001f', bandwidth: 900_000, averageBandwidth: 800_000, width: 640, height: 360,
    timescale: 90000, init: 800, segments: { start: 900_000, sizes: [1000, 1000], durations: [180000, 180000] },
  }
  const audio: Rendition = {
    id: 'a128', type: 'audio', version: 'fedcba9876543210', size: 5000, sha256: H('d'), chunks: [H('e')], blocks: [H('f')],
    contentType: 'audio/mp4', codecs: 'mp4a.40.2', bandwidth: 132_000, averageBandwidth: 130_000, timescale: 48000, init: 700,
    segments: { start: 470_400, sizes: [2000, 2000], durations: [96000, 96000] },
  }
  const text = mpd([video, audio])
  // the audio starts at 9.8 s, the video at 10 s: 9.8 s is the Period's start, and the video still starts 0.2 s after the audio
  t.match(text, /<SegmentList timescale="48000" presentationTimeOffset="470400">/, 'the ladder\'s earliest start (the audio\'s 9.8 s) maps to the Period\'s 0')
  t.match(text, /<SegmentList timescale="90000" presentationTimeOffset="882000">/, 'the video keeps its 0.2 s after the audio: 9.8 s in its own timescale')
  t.match(text, /<S t="900000" d="180000" r="1"\/>/)
  t.match(text, /mediaPresentationDuration="PT4\.2S"/, 'to the video\'s end, 4.2 s after the audio\'s start')
  const zero = mpd([{ ...video, segments: { ...video.segments, start: 0 } }])
  t.notMatch(zero, /presentationTimeOffset/, 'none when the first segment starts at 0')
})
