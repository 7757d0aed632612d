import t from 'tap'
import { parseManifest, isAdaptive, type Manifest } from '../manifest.js'
import { checkLadder, segmentOffsets, segmentTimes, type Rendition } from './rendition.js'

const H = (c: string) => c.repeat(64)

function rung(id: string, height: number, durations: number[], timescale = 12800): Rendition {
  const sizes = durations.map(() => 1000)
  return {
    id, type: 'video', version: '0123456789abcdef', size: 800 + sizes.length * 1000 + 100, sha256: H('a'), chunks: [H('b')], blocks: [H('c')],
    contentType: 'video/mp4', codecs: 'avc1.64001f', bandwidth: 900_000, averageBandwidth: 800_000, width: Math.round(height * 16 / 9), height,
    frameRate: 25, timescale, init: 800, segments: { start: 0, sizes, durations },
  }
}

const audio: Rendition = {
  id: 'a128', type: 'audio', version: 'fedcba9876543210', size: 5000, sha256: H('d'), chunks: [H('e')], blocks: [H('f')],
  contentType: 'audio/mp4', codecs: 'mp4a.40.2', bandwidth: 132_000, averageBandwidth: 130_000, sampleRate: 48000, channels: 2,
  timescale: 48000, init: 700, segments: { start: 0, sizes: [2000, 2000], durations: [96256, 48000] },
}

function adaptive(renditions: Rendition[]): Manifest {
  return { contentId: 'abr-1', version: '00112233aabbccdd', size: 0, chunkSize: 64 * 1024 ** 2, sha256: H('0'), chunks: [],
    contentType: 'application/vnd.apple.mpegurl', title: 'ABR', categories: [], rights: { regions: ['*'], availableFrom: null, availableUntil: null },
    createdAt: 1, renditions }
}

t.test('offsets and times of segments', async t => {
  const r = rung('v360', 360, [25600, 25600, 12800])
  t.same(segmentOffsets(r), [800, 1800, 2800, 3800])
  t.same(segmentTimes(r), [0, 2, 4, 5])
})

t.test('a ladder: aligned video rungs (any timescale) and one audio rendition', async t => {
  t.equal(checkLadder([rung('v720', 720, [25600, 25600]), rung('v360', 360, [180000, 180000], 90000), audio]), undefined)
  t.match(checkLadder([rung('v720', 720, [25600, 25600]), rung('v360', 360, [25600, 25700])]), /segment 2 at 4\.000 s and 4\.008 s: their keyframes are not aligned/)
  t.match(checkLadder([rung('v720', 720, [25600, 25600]), rung('v360', 360, [25600])]), /have 2 and 1 segments/)
  t.match(checkLadder([rung('v720', 720, [25600]), rung('v720', 360, [25600])]), /v720 appears twice/)
  t.match(checkLadder([audio]), /at least one video rendition/)
  t.match(checkLadder([rung('v720', 720, [25600]), audio, { ...audio, id: 'a64' }]), /at most one audio/)
})

t.test('an adaptive manifest parses; its mistakes are named', async t => {
  const m = parseManifest(adaptive([rung('v720', 720, [25600, 25600]), audio]))
  t.ok(isAdaptive(m))
  t.notOk(isAdaptive({ ...m, renditions: undefined }))
  t.throws(() => parseManifest({ ...adaptive([rung('v720', 720, [25600])]), size: 10, chunks: [H('1')] }), /adaptive title's own file is empty/)
  t.throws(() => parseManifest(adaptive([{ ...rung('v720', 720, [25600]), chunks: [H('b'), H('b')] }])), /renditions\.0\.chunks: expected 1 chunk digests/)
  t.throws(() => parseManifest(adaptive([{ ...rung('v720', 720, [25600]), segments: { start: 0, sizes: [10_000], durations: [1] } }])), /past the file's size/)
  t.throws(() => parseManifest(adaptive([{ ...rung('V720', 720, [25600]) }])), /rendition id is 1-16 characters/)
  t.throws(() => parseManifest(adaptive([{ ...rung('v720', 720, [25600]), codecs: 'avc1 64001f' }])), /RFC 6381/)
  t.throws(() => parseManifest(adaptive([{ ...rung('v720', 720, [25600]), height: undefined }])), /needs width and height/)
  t.throws(() => parseManifest(adaptive([rung('v720', 720, [25600, 25600]), rung('v360', 360, [51200])])), /keyframes are not aligned/)
})
