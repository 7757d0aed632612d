import t from 'tap'
import { loadConfig } from '../../../lib/config/config.js'
import { jobs } from './args.js'
import { planLadder } from './ladder.js'
import type { SourceInfo } from './probe.js'

/**
 * The ffmpeg command lines of each strategy: what decodes once, what runs
 * per rung, and the options every video output must carry for its segments
 * to line up with the other rungs'.
 */
const settings = loadConfig({ env: {} }).ingest
const src: SourceInfo = {
  file: '/films/in.mov', duration: 60,
  video: { index: 1, codec: 'h264', width: 854, height: 480, displayWidth: 854, displayHeight: 480, rotation: 0, frameRate: { num: 30000, den: 1001 }, end: 60, packets: 1798 },
  audio: { index: 0, codec: 'aac', channels: 2, sampleRate: 44100 },
}
const plan = planLadder(src, 'sample', settings)
const all = new Set(['v480', 'v360', 'v240', 'a128'])
const after = (args: string[], opt: string) => args[args.indexOf(opt) + 1]

t.test('split: one process decodes once, converts rate and pixel format once, and splits into every rung and the audio', async t => {
  const js = jobs(plan, src.file, '/w', 'split', all)
  t.equal(js.length, 1)
  const [j] = js
  t.same(j!.outputs, ['v480', 'v360', 'v240', 'a128'])
  t.equal(after(j!.args, '-i'), '/films/in.mov')
  t.equal(after(j!.args, '-filter_complex'),
    '[0:1]fps=30000/1001,format=yuv420p,split=3[s0][s1][s2];[s0]scale=854:480,setsar=1[o0];[s1]scale=640:360,setsar=1[o1];[s2]scale=426:240,setsar=1[o2]')
  t.same(j!.args.filter(a => a.endsWith('.part')), ['/w/v480.mp4.part', '/w/v360.mp4.part', '/w/v240.mp4.part', '/w/a128.mp4.part'])
  t.same(j!.args.slice(0, 8), ['-hide_banner', '-nostdin', '-v', 'error', '-nostats', '-progress', 'pipe:1', '-y'])
})

t.test('every video output: closed GOPs of fps × segment length, keyframes forced at every segment mark, VBV, one fragment per GOP', async t => {
  const [j] = jobs(plan, src.file, '/w', 'split', all)
  const a = j!.args
  const v360 = a.slice(a.indexOf('[o1]'), a.indexOf('/w/v360.mp4.part'))
  t.same(v360, ['[o1]', '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-b:v', '700k', '-maxrate', '770k', '-bufsize', '1400k',
    '-g', '120', '-keyint_min', '120', '-sc_threshold', '0', '-flags', '+cgop', '-force_key_frames', 'expr:gte(t,n_forced*4)',
    '-movflags', '+frag_keyframe+empty_moov+default_base_moof+skip_trailer', '-map_metadata', '-1', '-map_chapters', '-1', '-f', 'mp4'])
  const audio = a.slice(a.lastIndexOf('-map'), a.indexOf('/w/a128.mp4.part'))
  t.same(audio, ['-map', '0:0', '-c:a', 'aac', '-b:a', '128k', '-ac', '2', '-ar', '48000', '-frag_duration', '4000000',
    '-movflags', '+empty_moov+default_base_moof+skip_trailer', '-map_metadata', '-1', '-map_chapters', '-1', '-f', 'mp4'],
  'audio: a fragment per segment length, not per frame (every AAC frame is a sync sample)')
})

t.test('parallel and sequential: one process per rung (each scaling from its own decode) and one for the audio', async t => {
  for (const strategy of ['parallel', 'sequential'] as const) {
    const js = jobs(plan, src.file, '/w', strategy, all)
    t.same(js.map(j => j.outputs), [['v480'], ['v360'], ['v240'], ['a128']], strategy)
    t.equal(after(js[1]!.args, '-filter_complex'), '[0:1]fps=30000/1001,format=yuv420p,scale=640:360,setsar=1[o0]')
    t.notOk(js[3]!.args.includes('-filter_complex'), 'the audio job decodes no video')
  }
})

t.test('finished renditions are left out; nothing left, no job', async t => {
  t.same(jobs(plan, src.file, '/w', 'split', new Set(['v240'])).map(j => j.outputs), [['v240']])
  t.same(jobs(plan, src.file, '/w', 'split', new Set(['a128'])).map(j => j.outputs), [['a128']])
  t.same(jobs(plan, src.file, '/w', 'split', new Set()), [])
  t.same(jobs(plan, src.file, '/w', 'parallel', new Set()), [])
})
