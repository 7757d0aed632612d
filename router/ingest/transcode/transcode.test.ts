import t from 'tap'
import { execFile } from 'node:child_process'
import { chmod, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { loadConfig } from '../../../lib/config/config.js'
import { segmentTimes, type Rendition } from '../../../lib/media/rendition.js'
import { ensureFfmpeg, ffmpeg } from '../../../test/helpers/ffmpeg.js'
import { ODD, makeSource, testIngestOverrides } from '../../../test/helpers/abr-sources.js'
import type { TestT } from '../../../test/system/harness.js'
import { probeSource } from './probe.js'
import { sha256File } from './renditions.js'
import { findTools } from './tools.js'
import { transcode } from './transcode.js'

/**
 * Source → ladder on this machine, with ffmpeg: the renditions are what
 * the plan says (sizes, codecs, rates), their keyframes sit at the same
 * times in every rung (ffprobe's packets, not our index, say so), a re-run
 * resumes from finished renditions, a failure keeps them, and a source
 * that decodes short is the source's fault.
 */
const run = promisify(execFile)
const FFPROBE = '/usr/bin/ffprobe'

async function keyframes(file: string): Promise<number[]> {
  const { stdout } = await run(FFPROBE, ['-v', 'error', '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0', file], { maxBuffer: 64 * 1024 ** 2 })
  return stdout.trim().split('\n').map(l => l.split(',')).filter(([, f]) => f!.startsWith('K')).map(([p]) => Number(p)).sort((a, b) => a - b)
}

async function streamOf(file: string): Promise<Record<string, string | number>> {
  const { stdout } = await run(FFPROBE, ['-v', 'error', '-show_streams', '-of', 'json', file])
  return (JSON.parse(stdout) as { streams: Record<string, string | number>[] }).streams[0]!
}

async function setup(t: TestT, extra: Record<string, unknown> = {}) {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const settings = loadConfig({ env: {}, overrides: testIngestOverrides(join(dir, 'work'), extra) as never }).ingest
  const tools = await findTools(settings.ffmpeg)
  return { bin, dir, settings, tools }
}

async function prepare(tools: { ffprobe: string }, file: string) {
  return { source: await probeSource(tools.ffprobe, file), sha256: await sha256File(file) }
}

t.test('a ladder out of a source: the planned sizes, H.264 and AAC, keyframes at the same times in every rung', async t => {
  const { bin, dir, settings, tools } = await setup(t)
  const file = await makeSource(bin, dir, 'in.mp4', { seconds: 5, size: '320x180' })
  const r = await transcode({ ...(await prepare(tools, file)), ladder: 't', settings, tools })
  t.same(r.renditions.map(x => x.id), ['v180', 'v144', 'v90', 'a128'])
  t.same(r.resumed, [])
  t.same(r.renditions.filter(x => x.media.type === 'video').map(x => `${x.media.width}x${x.media.height}`), ['320x180', '256x144', '160x90'])
  const boundaries = segmentTimes(r.renditions[0]!.media as Rendition)
  t.same(boundaries, [0, 2, 4, 5], 'segments of 2 s (ingest.segmentSeconds), and the rest')
  for (const x of r.renditions.filter(y => y.media.type === 'video')) {
    t.same(await keyframes(x.path), [0, 2, 4], `${x.id}: ffprobe finds keyframes at 0, 2 and 4 s, and nowhere else`)
    const s = await streamOf(x.path)
    t.equal(s.pix_fmt, 'yuv420p')
    t.equal(s.r_frame_rate, '25/1')
    t.equal(x.media.codecs, `avc1.${Number(s.profile === 'Constrained Baseline' ? 0x42 : s.profile === 'High' ? 0x64 : 0x4d).toString(16)}` +
      `${x.media.codecs.slice(7, 9)}${Number(s.level).toString(16).padStart(2, '0')}`, `${x.id}: the codec string has the profile and level ffprobe reads (${s.profile}, ${s.level})`)
    t.ok(x.media.averageBandwidth <= x.media.bandwidth && x.media.bandwidth > 0)
  }
  const a = r.renditions[3]!
  t.match(a.media, { type: 'audio', contentType: 'audio/mp4', codecs: 'mp4a.40.2', sampleRate: 48000, channels: 2 })
  t.same((await readdir(r.workDir.dir)).sort(), ['a128.mp4', 'lock', 'plan.json', 'v144.mp4', 'v180.mp4', 'v90.mp4'])
  await r.workDir.unlock()

  const again = await transcode({ ...(await prepare(tools, file)), ladder: 't', settings, tools })
  t.same(again.resumed, ['v180', 'v144', 'v90', 'a128'], 'a re-run finds every rendition done')
  t.same(again.jobs, [], 'and runs no ffmpeg')
  t.equal(again.workDir.dir, r.workDir.dir)
  await rm(again.workDir.path('v144'))
  await again.workDir.unlock()
  const third = await transcode({ ...(await prepare(tools, file)), ladder: 't', settings, tools })
  t.same(third.jobs.map(j => j.outputs), [['v144']], 'only the missing rendition is made again')
  t.same(third.renditions.map(x => x.media.segments.durations), r.renditions.map(x => x.media.segments.durations),
    'the same segments as the first time (not always the same bytes: x264 alone and beside others may differ)')
  t.equal(third.renditions[0]!.sha256, r.renditions[0]!.sha256, 'renditions it found done are left alone')
  await third.workDir.unlock()
})

t.test('the parallel and sequential strategies make the same ladder', async t => {
  const { bin, dir, settings, tools } = await setup(t)
  const file = await makeSource(bin, dir, 'in.mp4', { seconds: 3, size: '320x180' })
  const src = await prepare(tools, file)
  const split = await transcode({ ...src, ladder: 't', settings, tools, strategy: 'split' })
  await split.workDir.clear()
  for (const strategy of ['parallel', 'sequential'] as const) {
    const r = await transcode({ ...src, ladder: 't', settings, tools, strategy })
    t.same(r.jobs.map(j => j.outputs).sort(), [['a128'], ['v144'], ['v180'], ['v90']], `${strategy}: a job per rendition`)
    t.same(r.renditions.map(x => x.media.segments.durations), split.renditions.map(x => x.media.segments.durations), `${strategy}: the same segments as split`)
    await r.workDir.clear()
  }
})

t.test('no sound, an odd size, a rotated phone video', async t => {
  const { bin, dir, settings, tools } = await setup(t, { 'ingest.ladders': { o: [{ id: 'v480', height: 480, kbps: 600 }, { id: 'v240', height: 240, kbps: 200 }] } })
  const mute = await makeSource(bin, dir, 'mute.mp4', { seconds: 2, size: '320x180', audio: false })
  const m = await transcode({ ...(await prepare(tools, mute)), ladder: 'o', settings, tools })
  t.same(m.renditions.map(x => `${x.id} ${x.media.width}x${x.media.height}`), ['v240 320x180'], 'below every rung: the lowest at its own size; no audio rendition')
  await m.workDir.unlock()

  const odd = await makeSource(bin, dir, 'odd.mp4', { ...ODD, seconds: 2 })
  const o = await transcode({ ...(await prepare(tools, odd)), ladder: 'o', settings, tools })
  t.same(o.renditions.map(x => `${x.id} ${x.media.width ?? 'audio'}x${x.media.height ?? ''}`), ['v480 850x478', 'v240 426x240', 'a128 audiox'], '853x479 4:4:4: even 4:2:0 rungs, none upscaled')
  t.equal((await streamOf(o.renditions[0]!.path)).pix_fmt, 'yuv420p')
  await o.workDir.unlock()

  const land = await makeSource(bin, dir, 'land.mp4', { seconds: 2, size: '480x270', audio: false })
  const rot = join(dir, 'rot.mp4')
  await ffmpeg(bin, ['-i', land, '-c', 'copy', '-metadata:s:v', 'rotate=90', rot])
  const p = await transcode({ ...(await prepare(tools, rot)), ladder: 'o', settings, tools })
  t.same(p.renditions.map(x => `${x.id} ${x.media.width}x${x.media.height}`), ['v240 240x426'], 'shown portrait: the rung is 240 wide')
  await p.workDir.unlock()
})

t.test('a transcode that fails keeps its finished renditions, says where, and the next run resumes from them', async t => {
  const { bin, dir, settings, tools } = await setup(t, { 'ingest.strategy': 'sequential' })
  const file = await makeSource(bin, dir, 'in.mp4', { seconds: 4, size: '320x180' })
  // an ffmpeg that dies on the third rung, as a killed or out-of-space one would
  const fake = join(dir, 'bin')
  await run('mkdir', ['-p', fake])
  await writeFile(join(fake, 'ffmpeg'), `#!/bin/sh\ncase "$*" in *v90.mp4.part*) echo "disk full (simulated)" >&2; exit 1;; esac\nexec ${bin} "$@"\n`)
  await chmod(join(fake, 'ffmpeg'), 0o755)
  await symlink(FFPROBE, join(fake, 'ffprobe'))
  const failing = await findTools(join(fake, 'ffmpeg'))
  const src = await prepare(tools, file)
  const err = await transcode({ ...src, ladder: 't', settings, tools: { ...failing, version: tools.version } }).catch(e => e as Error)
  t.match(err, { code: 'CDN_ERR_TRANSCODE', message: /^transcode failed: ffmpeg exited with code 1: disk full \(simulated\); the work directory .* keeps the finished renditions v180, v144: run the same command again to resume$/ })
  const r = await transcode({ ...src, ladder: 't', settings, tools })
  t.same(r.resumed, ['v180', 'v144'])
  t.same(r.jobs.map(j => j.outputs), [['v90'], ['a128']])
  await r.workDir.unlock()
})

t.test('ffmpeg that is not there is named', async t => {
  await t.rejects(findTools('/nowhere/ffmpeg'), { code: 'CDN_ERR_NO_FFMPEG', message: 'ingest.ffmpeg is /nowhere/ffmpeg, which is not an executable file' })
  const dir = t.testdir({ ffmpeg: '#!/bin/sh\nexit 0\n' })
  await chmod(join(dir, 'ffmpeg'), 0o755)
  await t.rejects(findTools(join(dir, 'ffmpeg')), { code: 'CDN_ERR_NO_FFMPEG', message: /ffprobe is not next to .*ffmpeg/ })
})
