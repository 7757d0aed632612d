import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startContentUpstream } from '../helpers/upstream.js'
import { metric, startTestEdge } from '../helpers/edge.js'
import { ensureFfmpeg, ffmpeg } from '../helpers/ffmpeg.js'

/**
 * A real player through the edge: ffmpeg decodes a generated video over HTTP,
 * from the start and after seeks, and the frames it decodes are identical to
 * decoding the file directly. The MP4 keeps its index (moov) at the end, as
 * many files do, so the player must seek with Range requests to even start.
 */
// the second run with a serve thread: ffmpeg's open-ended ranges span chunks, so most of them are relayed, and its seeks abort them
for (const threads of [0, 1]) t.test(`ffmpeg plays and seeks a video through the edge${threads ? ', with a serve thread' : ''}`, async t => {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const file = join(dir, 'clip.mp4')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc=duration=8:size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=8',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', '-shortest', '-y', file])
  const bytes = readFileSync(file)
  const up = await startContentUpstream(t)
  await up.addTitle('clip', bytes, { chunkSize: 64 * 1024, contentType: 'video/mp4' })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': threads })
  const url = `${edge.url}/v1/content/clip`
  const ranges = () => metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'range' })
  t.comment(`clip: ${bytes.length} bytes in ${Math.ceil(bytes.length / 65536)} chunks of 64 KiB`)

  const direct = await ffmpeg(bin, ['-i', file, '-map', '0:v', '-f', 'framemd5', '-'])
  const viaEdge = await ffmpeg(bin, ['-i', url, '-map', '0:v', '-f', 'framemd5', '-'])
  t.equal(viaEdge, direct, 'every decoded frame is identical to decoding the file')
  t.ok(await ranges() >= 1, `the player used range requests (${await ranges()}) to find the index at the end`)

  for (const at of ['5', '2.5']) {
    const before = await ranges()
    const seekDirect = await ffmpeg(bin, ['-ss', at, '-i', file, '-t', '1', '-map', '0:v', '-f', 'framemd5', '-'])
    const seekEdge = await ffmpeg(bin, ['-ss', at, '-i', url, '-t', '1', '-map', '0:v', '-f', 'framemd5', '-'])
    t.equal(seekEdge, seekDirect, `seek to ${at} s: the same frames`)
    t.ok(seekEdge.split('\n').filter(l => /^0,/.test(l)).length >= 20, 'about a second of frames decoded')
    t.ok(await ranges() > before, `seeking to ${at} s used range requests`)
  }
  const audio = await ffmpeg(bin, ['-ss', '6', '-i', url, '-map', '0:a', '-f', 'null', '-'])
  t.equal(audio, '', 'the audio track decodes after a seek without errors')
})
