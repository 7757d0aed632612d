import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { adaptiveManifest, ladderFiles, makeLadder } from '../helpers/edge-ladder.js'
import { get, settled, startTestEdge, until } from '../helpers/edge.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { segmentOffsets, segmentTimes, type Rendition } from '../../lib/media/rendition.js'
import type { Manifest } from '../../lib/manifest.js'
import type { SessionAwarePolicy } from '../../edge/policy/session-policy.js'
import { sessionKey } from '../../edge/policy/policy.js'

/**
 * Readahead and session-aware retention follow a viewer across a rung switch
 * (issue 15): a viewer reads the top rung, then switches down at a segment
 * boundary as a player does (the new rung's init segment, then its segment at
 * the same time). From then on the chunks its video stream protects and the
 * chunk read ahead are the lower rung's from that time on, none of the top
 * rung's; the init read alone moved nothing and read nothing ahead; its audio
 * is a second stream of the same session. The session is the token's viewer,
 * the token in the path.
 */
const CS = 64 * 1024
const KEYS = 'k1:abr-edge-sessions-test-key-012345678'

t.test('after a rung switch the protected and read-ahead chunks are the new rung\'s from the same time on', async t => {
  const ladder = await makeLadder()
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const man = adaptiveManifest('abr', ladder, CS) as Manifest & { renditions: Rendition[] }
  up.addAdaptive(man, ladderFiles(ladder))
  const edge = await startTestEdge(t, up, { 'edge.diskPolicy': 'session', 'edge.sessionHorizonChunks': 2, 'edge.readaheadChunks': 1 },
    { REELCDN_TOKEN_KEYS: KEYS })
  const tracker = (edge.cache.disk.policy as SessionAwarePolicy).tracker
  const tok = signToken(KeyRing.parse(KEYS), { cid: 'abr', exp: Math.floor(Date.now() / 1000) + 600, vid: 'viewer-1' })
  const base = `${edge.url}/v1/content/abr/t/${tok}`
  const [top, low, audio] = man.renditions as [Rendition, Rendition, Rendition]
  const seg = (r: Rendition, i: number): [number, number] => {
    const at = segmentOffsets(r)
    return [at[i]!, at[i + 1]! - 1]
  }
  const read = async (r: Rendition, [s, e]: [number, number]) => {
    const got = await get(`${base}/${r.id}.mp4`, { range: `bytes=${s}-${e}` })
    t.equal(got.status, 206, `${r.id} bytes=${s}-${e}`)
    t.ok(got.body.equals(ladder.find(f => f.id === r.id)!.bytes.subarray(s, e + 1)))
  }
  const wanted = (r: Rendition) => Array.from({ length: r.chunks.length }, (_, i) => tracker.wanted(sessionKey(`abr/${r.id}`, i)))
  const chunkOf = (at: number) => Math.floor(at / CS)
  // the chunk a read ends in is protected too while the read stopped short of its end (the viewer reads on in it)
  const from = (r: Rendition, end: number) => (end < Math.min((chunkOf(end) + 1) * CS, r.size) - 1 ? chunkOf(end) : chunkOf(end) + 1)

  // the top rung from the start, and the audio
  await read(top, [0, top.init - 1])
  await read(top, seg(top, 0))
  await read(audio, [0, audio.init - 1])
  await read(audio, seg(audio, 0))
  const topAt = chunkOf(seg(top, 0)[1])
  const topFrom = from(top, seg(top, 0)[1])
  t.same(wanted(top).map((w, i) => (i >= topFrom && i <= topAt + 2 ? w : 0)), wanted(top), 'only the top rung\'s chunk in reading and next chunks are protected')
  t.equal(wanted(top)[topAt + 1], 1, 'the next chunk of the top rung is protected')
  t.equal(tracker.live, 2, 'one viewer: a video and an audio stream')
  await until(() => up.requests('abr/v360', topAt + 1) === 1, 'the next chunk of the top rung read ahead')

  // switch down at the boundary of segment 2 (t = 4 s): the new rung's init segment first
  const t2 = segmentTimes(low)[2]!
  t.ok(Math.abs(segmentTimes(top)[2]! - t2) < 0.001, `the rungs switch at the same time, ${t2} s`)
  const lowBefore = up.requests('abr/v180')
  await read(low, [0, low.init - 1])
  t.ok(wanted(top)[topAt + 1]! > 0, 'the init read moved nothing: the top rung is still where the viewer is')
  t.same(wanted(low), wanted(low).map(() => 0), 'and nothing of the new rung is protected yet')
  await settled(edge)
  t.equal(up.requests('abr/v180') - lowBefore, 1, 'the init read fetched its chunk and read nothing ahead')

  await read(low, seg(low, 2))
  const lowAt = chunkOf(seg(low, 2)[1])
  t.same(wanted(top), wanted(top).map(() => 0), 'the top rung is released')
  const lowFrom = from(low, seg(low, 2)[1])
  const expect = wanted(low).map((_, i) => (i >= lowFrom && i <= lowAt + 2 ? 1 : 0))
  t.same(wanted(low), expect, `the new rung is protected after chunk ${lowAt}, where it is at ${t2} s`)
  t.ok(expect.some(x => x === 1), 'something of it is ahead')
  await until(() => up.requests('abr/v180', lowAt + 1) === 1, 'the new rung read ahead from where the viewer is')
  t.equal(up.requests('abr/v180', 0), 1, 'its chunks before that time were never fetched but for the init segment\'s')
  t.equal(tracker.live, 2, 'still one viewer\'s two streams')
  t.equal(tracker.wanted(sessionKey('abr/a64', 1)), audio.chunks.length > 1 ? 1 : 0, 'the audio stream stayed where it was')
  await settled(edge)
})
