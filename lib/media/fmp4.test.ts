import t from 'tap'
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { ensureFfmpeg, ffmpeg } from '../../test/helpers/ffmpeg.js'
import { indexFmp4Buffer, indexFmp4File } from './fmp4.js'
import { MediaError } from './boxes.js'

/**
 * The fMP4 index against what ffprobe says of the same files: segment
 * boundaries at keyframes, durations, codec strings, picture and sound.
 * Sources are a few seconds of generated test pattern and tone.
 */
const run = promisify(execFile)
const FRAG = ['-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4']

interface Packet { pts_time: string; dts_time: string; duration_time: string; pos: string; size: string; flags: string }

async function packets(file: string): Promise<Packet[]> {
  const { stdout } = await run('/usr/bin/ffprobe', ['-v', 'error', '-show_packets', '-of', 'json', file], { maxBuffer: 64 * 1024 ** 2 })
  return (JSON.parse(stdout) as { packets: Packet[] }).packets
}

async function stream(file: string): Promise<Record<string, string | number>> {
  const { stdout } = await run('/usr/bin/ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', file])
  return (JSON.parse(stdout) as { streams: Record<string, string | number>[] }).streams[0]!
}

t.test('a per-GOP video file: one segment per GOP, each starting at a keyframe, codecs as ffprobe reads them', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const v = join(dir, 'v.mp4')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc2=duration=7:size=426x240:rate=25', '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high',
    '-g', '50', '-keyint_min', '50', '-sc_threshold', '0', '-pix_fmt', 'yuv420p', ...FRAG, v])
  const x = await indexFmp4File(v)
  t.equal(x.track.type, 'video')
  const s = await stream(v)
  t.equal(s.profile, 'High')
  t.match(x.track.codecs, /^avc1\.6400[0-9a-f]{2}$/, 'High profile (0x64), no constraint flags')
  t.equal(parseInt(x.track.codecs.slice(-2), 16), s.level, `the level ffprobe reads (${s.level})`)
  t.same([x.track.width, x.track.height], [426, 240])
  t.equal(x.frameRate, 25)
  t.same(x.segments.durations.map(d => d / x.track.timescale), [2, 2, 2, 1], 'GOPs of 50 frames at 25 fps, and the rest')
  // every segment's first sample (lowest byte position inside it) is a keyframe, and every keyframe starts a segment
  const ps = await packets(v)
  let at = x.init
  for (const [i, size] of x.segments.sizes.entries()) {
    const inside = ps.filter(p => Number(p.pos) >= at && Number(p.pos) < at + size).sort((a, b) => Number(a.pos) - Number(b.pos))
    t.ok(inside.length > 0 && inside[0]!.flags.startsWith('K'), `segment ${i} starts with a keyframe`)
    t.equal(inside.filter(p => p.flags.startsWith('K')).length, 1, `segment ${i} holds one keyframe`)
    at += size
  }
  t.equal(ps.length, 175, 'every frame is in a segment')
  t.ok(x.bandwidth >= x.averageBandwidth && x.averageBandwidth > 0)
  const total = x.segments.sizes.reduce((a, b) => a + b, 0)
  t.equal(x.averageBandwidth, Math.ceil(total * 8 / 7), 'average: all segment bytes over 7 s')
  t.same(await indexFmp4Buffer(await readFile(v)), x, 'a Buffer indexes as the file does')
})

t.test('fragments shorter than a GOP: segments still start at keyframes, with the same boundaries', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const gop = join(dir, 'gop.mp4')
  const small = join(dir, 'small.mp4')
  const src = ['-f', 'lavfi', '-i', 'testsrc2=duration=6:size=320x180:rate=30', '-c:v', 'libx264', '-preset', 'ultrafast',
    '-g', '60', '-keyint_min', '60', '-sc_threshold', '0', '-pix_fmt', 'yuv420p']
  await ffmpeg(bin, [...src, ...FRAG, gop])
  await ffmpeg(bin, [...src, '-movflags', '+empty_moov+default_base_moof+frag_every_frame', '-f', 'mp4', small])
  const a = await indexFmp4File(gop)
  const b = await indexFmp4File(small)
  t.same(b.segments.durations, a.segments.durations, 'the same segment durations')
  t.equal(b.segments.sizes.length, 3)
})

t.test('an audio file: segments are fragments; AAC-LC, rate and channels', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const a = join(dir, 'a.mp4')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'sine=frequency=440:duration=5', '-c:a', 'aac', '-b:a', '96k', '-ac', '2', '-ar', '44100',
    '-frag_duration', '2000000', ...FRAG, a])
  const x = await indexFmp4File(a)
  t.equal(x.track.type, 'audio')
  t.equal(x.track.codecs, 'mp4a.40.2')
  t.equal(x.track.sampleRate, 44100)
  t.equal(x.track.channels, 2)
  const secs = x.segments.durations.reduce((p, d) => p + d, 0) / x.track.timescale
  t.ok(Math.abs(secs - 5) < 0.05, `${secs} s of audio`)
  t.ok(x.segments.sizes.length >= 2, `${x.segments.sizes.length} segments`)
  t.equal(x.frameRate, undefined)
})

t.test('what is not a rendition file is refused by name', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const junk = join(dir, 'junk.bin')
  await writeFile(junk, randomBytes(10_000))
  await t.rejects(indexFmp4File(junk), { name: 'MediaError', message: /junk\.bin: not an MP4 file/ })
  await t.rejects(indexFmp4File(join(dir, 'missing.mp4')), { message: /missing\.mp4: ENOENT/ })
  await t.rejects(indexFmp4File(dir), { message: /is not a file/ })

  const flat = join(dir, 'flat.mp4')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc2=duration=2:size=160x90:rate=10', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-movflags', '+faststart', flat])
  await t.rejects(indexFmp4File(flat), { message: /not a fragmented MP4/ }, 'a progressive MP4')

  const both = join(dir, 'both.mp4')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc2=duration=2:size=160x90:rate=10', '-f', 'lavfi', '-i', 'sine=duration=2',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', ...FRAG, both])
  await t.rejects(indexFmp4File(both), { message: /holds one track; this one holds 2/ }, 'muxed audio and video')

  const whole = await readFile(flat.replace('flat', 'both'))
  const cut = whole.subarray(0, Math.floor(whole.length * 0.6))
  await t.rejects(indexFmp4Buffer(cut), MediaError, 'a truncated file')
  const v = join(dir, 'v.mp4')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc2=duration=3:size=160x90:rate=10', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-g', '10', ...FRAG, v])
  const vb = await readFile(v)
  await t.rejects(indexFmp4Buffer(vb.subarray(0, vb.length - 400)), { message: /truncated/ }, 'a rendition cut inside its last fragment')
})

/** The top-level boxes of an MP4 (offset, size, type), or the children of the box at `from`. */
function boxesOf(b: Buffer, from = 0, to = b.length): { at: number; size: number; type: string }[] {
  const out = []
  for (let at = from; at + 8 <= to;) {
    const size = b.readUInt32BE(at)
    out.push({ at, size, type: b.toString('latin1', at + 4, at + 8) })
    if (size < 8) break
    at += size
  }
  return out
}

t.test('malformed or unusual boxes: a last mdat of size 0 (to the end of the file), a trun claiming 2^32 samples without per-sample fields', async t => {
  const bin = await ensureFfmpeg()
  const v = join(t.testdir(), 'v.mp4')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc2=duration=3:size=160x90:rate=10', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-g', '10', ...FRAG, v])
  const written = await readFile(v)
  // what follows the last mdat (ffmpeg's mfra) left out: the mdat is then the file's last box
  const last = boxesOf(written).filter(b => b.type === 'mdat').pop()!
  const file = written.subarray(0, last.at + last.size)
  const want = await indexFmp4Buffer(file)
  const top = boxesOf(file)
  const lastMdat = top[top.length - 1]!
  t.equal(lastMdat.type, 'mdat')
  const open = Buffer.from(file)
  open.writeUInt32BE(0, lastMdat.at)
  t.same(await indexFmp4Buffer(open).catch((e: Error) => e.message), want, 'size 0 means to the end of the file (ISO/IEC 14496-12 4.2)')

  const moof = top.find(b => b.type === 'moof')!
  const traf = boxesOf(file, moof.at + 8, moof.at + moof.size).find(b => b.type === 'traf')!
  const trun = boxesOf(file, traf.at + 8, traf.at + traf.size).find(b => b.type === 'trun')!
  const huge = Buffer.from(file)
  huge.writeUInt32BE(huge.readUInt32BE(trun.at + 8) & ~0xf00, trun.at + 8)
  huge.writeUInt32BE(0xffffffff, trun.at + 12)
  // the index is synchronous between reads: a loop over the samples shows as the time it took (minutes, where this takes milliseconds)
  const started = Date.now()
  await t.rejects(indexFmp4Buffer(huge), { name: 'MediaError', message: /claims 4294967295 samples, more than the file's \d+ bytes/ })
  const ms = Date.now() - started
  t.ok(ms < 5000, `refused in ${ms} ms, not after a loop over 2^32 samples`)
})
