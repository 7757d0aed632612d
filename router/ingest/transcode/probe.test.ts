import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ensureFfmpeg, ffmpeg } from '../../../test/helpers/ffmpeg.js'
import { ODD, makeSource } from '../../../test/helpers/abr-sources.js'
import { probeSource } from './probe.js'

/**
 * What ffprobe tells a transcode about its source, and every source that is
 * not a usable video refused by name before any encoding: not a video, a
 * still picture, sound only, cut short (with its header whole, and without
 * it).
 */
const FFPROBE = '/usr/bin/ffprobe'

t.test('a video with sound: picture, rate, sound, duration', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const f = await makeSource(bin, dir, 'a.mp4', { seconds: 4, size: '320x180', rate: '30000/1001' })
  const s = await probeSource(FFPROBE, f)
  t.match(s.video, { index: 0, codec: 'h264', width: 320, height: 180, displayWidth: 320, displayHeight: 180, rotation: 0, frameRate: { num: 30000, den: 1001 } })
  t.ok(Math.abs(s.video.end - 4) < 0.1, `video ends at ${s.video.end}`)
  t.equal(s.video.packets, 120)
  t.match(s.audio, { index: 1, codec: 'aac', channels: 1, sampleRate: 44100 })
  t.ok(Math.abs(s.duration! - 4) < 0.1)
})

t.test('no sound, an odd size, rotation, non-square pixels', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  t.equal((await probeSource(FFPROBE, await makeSource(bin, dir, 'mute.mp4', { seconds: 2, audio: false }))).audio, undefined, 'no audio: fine, none')
  const odd = await probeSource(FFPROBE, await makeSource(bin, dir, 'odd.mp4', { ...ODD, seconds: 2 }))
  t.match(odd.video, { width: 853, height: 479, displayWidth: 853, displayHeight: 479 })
  const plain = await makeSource(bin, dir, 'land.mp4', { seconds: 2, size: '320x180', audio: false })
  const rot = join(dir, 'rot.mp4')
  await ffmpeg(bin, ['-i', plain, '-c', 'copy', '-metadata:s:v', 'rotate=90', rot])
  t.match((await probeSource(FFPROBE, rot)).video, { width: 320, height: 180, displayWidth: 180, displayHeight: 320, rotation: 90 }, 'a phone video: shown portrait')
  const sar = await probeSource(FFPROBE, await makeSource(bin, dir, 'sar.mp4', { seconds: 2, size: '640x480', audio: false, extra: ['-vf', 'setsar=4/3'] }))
  t.match(sar.video, { width: 640, height: 480, displayWidth: 853, displayHeight: 480 }, '4:3 pixels: shown 16:9')
})

t.test('what is not a video is refused, naming the file and why', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir({ 'notes.txt': 'a shopping list, not a film\n'.repeat(50), 'empty.mp4': '' })
  const bad = async (file: string, message: RegExp, what: string) =>
    t.rejects(probeSource(FFPROBE, file), { name: 'SourceError', code: 'CDN_ERR_BAD_SOURCE', message }, what)
  await bad(join(dir, 'notes.txt'), /notes\.txt is text \(tty\), not a video$/, 'text (ffmpeg reads it as ANSI art)')
  await writeFile(join(dir, 'junk.bin'), Buffer.alloc(5000, 0xa7))
  await bad(join(dir, 'junk.bin'), /junk\.bin is not a video ffmpeg can read: Invalid data found when processing input$/, 'bytes that are no format')
  await writeFile(join(dir, 'junk.mp4'), Buffer.alloc(5000, 0xa7))
  await bad(join(dir, 'junk.mp4'), /junk\.mp4 is not a video ffmpeg can read: no moov box \(moov atom not found\): the file is truncated, not an MP4/, 'the same bytes named .mp4')
  await bad(join(dir, 'empty.mp4'), /empty\.mp4 is not a video ffmpeg can read/, 'an empty file')
  await bad(join(dir, 'nope.mp4'), /nope\.mp4 is not a video ffmpeg can read: No such file or directory/, 'a missing file')
  await bad(dir, /is not a video ffmpeg can read/, 'a directory')
  const png = join(dir, 'still.png')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc2=size=160x90', '-frames:v', '1', png])
  await bad(png, /still\.png is a still image \(png_pipe\), not a video/, 'a picture')
  const m4a = join(dir, 'song.m4a')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'sine=duration=2', '-c:a', 'aac', m4a])
  await bad(m4a, /song\.m4a has no video stream \(mov,mp4,m4a,3gp,3g2,mj2: audio\)/, 'sound only')
})

t.test('a truncated file is refused before transcoding: header whole (faststart) or lost', async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const whole = await makeSource(bin, dir, 'whole.mp4', { seconds: 8, extra: ['-movflags', '+faststart'] })
  const bytes = await readFile(whole)
  const cut = join(dir, 'cut.mp4')
  await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.4)))
  await t.rejects(probeSource(FFPROBE, cut), { code: 'CDN_ERR_BAD_SOURCE', message: /cut\.mp4 is truncated: its header says 8\.0 s, but its video ends at [0-9.]+ s \(.*partial file\)/ },
    'the moov up front still says 8 s')
  const tail = await makeSource(bin, dir, 'tail.mp4', { seconds: 4 })
  const tb = await readFile(tail)
  await writeFile(cut, tb.subarray(0, tb.length - 2000))
  await t.rejects(probeSource(FFPROBE, cut), { code: 'CDN_ERR_BAD_SOURCE', message: /cut\.mp4 is not a video ffmpeg can read: it ends in the middle of its header \(End of file\): the file is truncated$/ },
    'the moov at the end, cut inside it')
  await writeFile(cut, tb.subarray(0, Math.floor(tb.length / 2)))
  await t.rejects(probeSource(FFPROBE, cut), { code: 'CDN_ERR_BAD_SOURCE', message: /cut\.mp4 is not a video ffmpeg can read: no moov box \(moov atom not found\): the file is truncated/ },
    'the moov at the end, cut off whole')
})
