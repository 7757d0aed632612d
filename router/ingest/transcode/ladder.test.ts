import t from 'tap'
import { loadConfig } from '../../../lib/config/config.js'
import { capRate, planLadder, snapRate } from './ladder.js'
import type { SourceInfo } from './probe.js'

/**
 * The plan of a transcode from a probe: which rungs a source gets, at which
 * size, and the shared frame rate and GOP — against the rules: no
 * rung above the source, even sizes with the aspect kept, the source's
 * frame rate capped at 60, keyframes every segment.
 */
const settings = loadConfig({ env: {} }).ingest

function source(w: number, h: number, o: { rate?: [number, number]; sar?: number; rotation?: number; audio?: boolean } = {}): SourceInfo {
  const [num, den] = o.rate ?? [25, 1]
  let dw = w * (o.sar ?? 1)
  let dh = h
  if ((o.rotation ?? 0) % 180 === 90) [dw, dh] = [dh, dw]
  return {
    file: 'src.mp4', duration: 10,
    video: { index: 0, codec: 'h264', width: w, height: h, displayWidth: Math.round(dw), displayHeight: Math.round(dh), rotation: o.rotation ?? 0,
      frameRate: { num, den }, end: 10, packets: 250 },
    ...(o.audio === false ? {} : { audio: { index: 1, codec: 'aac', channels: 2, sampleRate: 48000 } }),
  }
}

const sizes = (p: ReturnType<typeof planLadder>) => p.rungs.map(r => `${r.id} ${r.width}x${r.height}`)

t.test('a 1080p source gets the whole default ladder, 16:9 sizes, AAC as a128', async t => {
  const p = planLadder(source(1920, 1080), 'default', settings)
  t.same(sizes(p), ['v1080 1920x1080', 'v720 1280x720', 'v480 854x480', 'v360 640x360', 'v240 426x240'])
  t.same(p.rungs.map(r => r.kbps), [5000, 3000, 1200, 700, 300])
  t.ok(p.rungs.every(r => r.profile === 'high'))
  t.same(p.audio, { id: 'a128', kbps: 128, index: 1 })
  t.same(p.video, { index: 0, frameRate: { num: 25, den: 1 }, gop: 100 }, 'a GOP of 4 s at 25 fps')
})

t.test('no rung above the source: a 480p source gets 480, 360, 240', async t => {
  t.same(sizes(planLadder(source(854, 480), 'default', settings)), ['v480 854x480', 'v360 640x360', 'v240 426x240'])
  t.same(sizes(planLadder(source(1280, 720), 'sample', settings)), ['v480 854x480', 'v360 640x360', 'v240 426x240'])
})

t.test('an odd source size (853x479) keeps its 480p rung at its own even size (850x478), not upscaled', async t => {
  t.same(sizes(planLadder(source(853, 479), 'default', settings)), ['v480 850x478', 'v360 640x360', 'v240 426x240'], 'its aspect is 16:9 within 0.2 %')
  t.same(sizes(planLadder(source(1000, 562), 'default', settings)), ['v480 854x480', 'v360 640x360', 'v240 426x240'], '562 is more than 10 % below 720')
  t.same(sizes(planLadder(source(1776, 1000), 'default', settings)).slice(0, 2), ['v1080 1778x1000', 'v720 1280x720'],
    'within 10 % below 1080: made at the source\'s size')
})

t.test('a source below every rung gets the lowest rung at its own size', async t => {
  t.same(sizes(planLadder(source(160, 120), 'default', settings)), ['v240 160x120'])
  t.same(sizes(planLadder(source(161, 121), 'default', settings)), ['v240 160x120'], 'odd: rounded down to even')
})

t.test('portrait and rotated sources: the rung height is the short side, the aspect is the displayed one', async t => {
  t.same(sizes(planLadder(source(1080, 1920), 'default', settings)), ['v1080 1080x1920', 'v720 720x1280', 'v480 480x854', 'v360 360x640', 'v240 240x426'])
  t.same(sizes(planLadder(source(1280, 720, { rotation: 90 }), 'default', settings)), ['v720 720x1280', 'v480 480x854', 'v360 360x640', 'v240 240x426'],
    'a phone video stored landscape with a 90° display matrix')
})

t.test('non-square pixels: the displayed aspect, square pixels out', async t => {
  // 720x576 PAL with 64:45 pixels shows as 1024x576 (16:9)
  t.same(sizes(planLadder(source(720, 576, { sar: 64 / 45 }), 'default', settings)), ['v480 854x480', 'v360 640x360', 'v240 426x240'])
  // 640x480 with 4:3 pixels shows as 853x480
  t.same(sizes(planLadder(source(640, 480, { sar: 4 / 3 }), 'default', settings))[0], 'v480 854x480')
  t.same(sizes(planLadder(source(1000, 500), 'default', settings)), ['v480 960x480', 'v360 720x360', 'v240 480x240'], '2:1')
  t.same(sizes(planLadder(source(1000, 415), 'default', settings)), ['v360 860x360', 'v240 574x240'], '2.41:1 is 2.39:1 within 1 %')
})

t.test('frame rates: the source\'s, snapped to a standard one when within 0.5 %, capped at 60', async t => {
  t.same(planLadder(source(1280, 720, { rate: [30000, 1001] }), 'default', settings).video, { index: 0, frameRate: { num: 30000, den: 1001 }, gop: 120 },
    '29.97 fps: GOPs of 120 frames (4.004 s), keyframes forced at every 4 s mark fall on the same frames')
  t.same(snapRate({ num: 2983, den: 100 }), { num: 30000, den: 1001 }, 'variable-rate phone video that averages 29.83')
  t.same(snapRate({ num: 1250, den: 100 }), { num: 25, den: 2 }, 'not near a standard rate: kept')
  t.same(snapRate({ num: 1234567, den: 100000 }), { num: 12, den: 1 }, 'an odd measured rate: whole frames per second')
  t.same(capRate({ num: 120, den: 1 }, 60), { num: 60, den: 1 })
  t.same(capRate({ num: 100, den: 1 }, 60), { num: 50, den: 1 })
  t.same(capRate({ num: 120000, den: 1001 }, 60), { num: 60000, den: 1001 })
  t.same(capRate({ num: 60, den: 1 }, 60), { num: 60, den: 1 })
  const p = planLadder(source(1920, 1080, { rate: [120, 1] }), 'default', settings)
  t.same(p.video.frameRate, { num: 60, den: 1 })
  t.equal(p.video.gop, 240)
  t.equal(planLadder(source(1920, 1080), 'default', { ...settings, segmentSeconds: 2 }).video.gop, 50)
})

t.test('a source without sound gets no audio rendition; an unknown ladder is named', async t => {
  t.equal(planLadder(source(640, 360, { audio: false }), 'default', settings).audio, undefined)
  t.throws(() => planLadder(source(640, 360), 'nope', settings), { code: 'CDN_ERR_BAD_LADDER', message: /no ladder named nope in ingest\.ladders \(there are: default, sample\)/ })
})

t.test('ladders in config are checked by name', async t => {
  const bad = (ladders: unknown) => () => loadConfig({ env: {}, overrides: { 'ingest.ladders': ladders as never } })
  t.throws(bad({ x: [{ id: 'v721', height: 721, kbps: 3000 }] }), /ingest\.ladders\.x\.0\.height.*must be even/)
  t.throws(bad({ x: [{ id: 'V720', height: 720, kbps: 3000 }] }), /ingest\.ladders\.x\.0\.id.*rendition id/)
  t.throws(bad({ x: [{ id: 'a', height: 720, kbps: 3000 }, { id: 'a', height: 480, kbps: 1000 }] }), /rung ids must be unique/)
  t.throws(bad({ x: [] }), /ingest\.ladders\.x/)
  t.throws(() => loadConfig({ env: {}, overrides: { 'ingest.segmentSeconds': 0 } }), /ingest\.segmentSeconds/)
  t.throws(() => loadConfig({ env: {}, overrides: { 'ingest.strategy': 'fast' as never } }), /ingest\.strategy/)
  t.equal(loadConfig({ env: { REELCDN_INGEST_PRESET: 'ultrafast' } }).ingest.preset, 'ultrafast', 'REELCDN_INGEST_PRESET')
})
