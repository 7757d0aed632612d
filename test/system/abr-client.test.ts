import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { HlsPlayer, type FetchedSegment } from '../../client/abr/hls-player.js'
import { TokenBucket } from '../../client/token-bucket.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { makeLadder } from '../helpers/abr-ladder.js'
import { staticRangeServer } from '../helpers/static-range-server.js'

/**
 * The HLS player over the network: a real three-rung ladder with audio (made
 * with ffmpeg, indexed with lib/media/fmp4.ts, playlists from lib/media/hls.ts)
 * served with byte ranges under a tokened path, played through links of known
 * capacity. Titles are 24 s played at 4x, so a session takes about 6 s.
 */
const SPEED = 4
const dir = t.testdir()
let ladder: Rendition[]
let server: Awaited<ReturnType<typeof staticRangeServer>>
const prefix = '/v1/content/movie/t/TOKEN.abc/'

t.before(async () => {
  ladder = await makeLadder(dir, { durationS: 24, rungs: [{ id: 'v90', height: 90, kbps: 150 }, { id: 'v180', height: 180, kbps: 400 },
    { id: 'v360', height: 360, kbps: 1000 }], audioKbps: 64 })
})

async function serve(tt: Parameters<typeof staticRangeServer>[0]) {
  server = await staticRangeServer(tt, { dir, prefix })
  // /v1/play's answer for an adaptive title (docs/abr.md): `hls` is the tokened master
  return { contentId: 'movie', urls: [{ url: server.url('master.m3u8'), kind: 'edge' as const, hls: server.url('master.m3u8') }] }
}

/** Plays to the end (or `wallMs`), calling `during` with the player each 50 ms. */
async function play(p: HlsPlayer, wallMs = 15_000, during?: (p: HlsPlayer) => void) {
  p.start()
  const t0 = performance.now()
  while (p.state !== 'ended' && !p.error && performance.now() - t0 < wallMs) {
    during?.(p)
    await new Promise(r => setTimeout(r, 50))
  }
  await p.close()
  if (p.error) throw p.error
  return p
}

/** The rung of each video segment played, in order. */
const rungsPlayed = (p: HlsPlayer) => p.clock.playedRungs

t.test('the playlists parsed off a tokened path; every byte fetched is the file\'s; an unlimited link climbs to the top rung', async t => {
  const playAnswer = await serve(t)
  const got: FetchedSegment[] = []
  const p = await HlsPlayer.open(playAnswer, { speed: SPEED, onSegment: s => got.push(s) })
  t.same(p.ladder.map(r => r.name), ['v90', 'v180', 'v360'], 'the ladder, lowest first')
  const audio = ladder.find(r => r.type === 'audio')!
  t.same(p.ladder.map(r => r.variant.bandwidth), ['v90', 'v180', 'v360'].map(id => ladder.find(r => r.id === id)!.bandwidth + audio.bandwidth),
    'BANDWIDTH: each rung\'s peak plus the audio\'s')
  await play(p)
  const files = new Map(ladder.map(r => [r.id, readFileSync(join(dir, `${r.id}.mp4`))]))
  let bytes = 0
  for (const s of got) {
    const file = files.get(s.playlist.replace('.m3u8', ''))!
    const want = file.subarray(s.range.offset, s.range.offset + s.range.length!)
    if (!s.bytes.equals(want)) t.fail(`${s.playlist} ${s.kind} ${s.index} differs from the file at ${s.range.offset}`)
    bytes += s.bytes.length
  }
  t.pass(`${got.length} segments, ${bytes} bytes, each equal to its rendition file's`)
  const video = got.filter(s => s.track === 'video' && s.kind === 'media')
  t.same(video.map(s => s.index), Array.from({ length: 12 }, (_, i) => i), 'every video segment once, in order')
  t.same(got.filter(s => s.track === 'audio' && s.kind === 'media').map(s => s.index), Array.from({ length: audio.segments.sizes.length }, (_, i) => i),
    'every audio segment once')
  t.same(got.filter(s => s.kind === 'init').map(s => s.playlist).sort(), [...new Set(video.map(s => s.playlist)), 'a64.m3u8'].sort(),
    'the init segment of each rung played, and the audio\'s, once each')
  // (the samples are a few ms long, times the speed: on a busy machine a pause of the process makes one come out low, and the
  // rule rightly steps down for a segment; so one dip is allowed, two are a rule that does not trust a fast link)
  const rungs = video.map(s => s.rung).join(' ')
  t.ok(video.slice(0, 4).some(s => s.rung === 2), `the top rung within four segments: ${rungs}`)
  t.ok(video.slice(-8).filter(s => s.rung !== 2).length <= 1 && video[video.length - 1]!.rung === 2, `the top rung for the last eight but at most one: ${rungs}`)
  t.ok(server.log.every(r => r.path.startsWith(prefix)), 'every request kept the token path')
  t.same(p.clock.stalls, [], 'no stall')
  t.equal(p.failovers, 0)
})

t.test('links of known capacity: settled on the low rung with no stall, and on the lower of two rungs with no oscillation', async t => {
  const playAnswer = await serve(t)
  const probe = await HlsPlayer.open(playAnswer)
  const bw = probe.ladder.map(r => r.variant.bandwidth)
  await probe.close()
  const session = async (bps: number) => play(await HlsPlayer.open(playAnswer, { speed: SPEED, link: TokenBucket.ofLink(bps, SPEED) }))
  // just above the lowest rung (video and audio peaks); and midway between the middle and the top rung
  const [low, mid] = await Promise.all([session(1.3 * bw[0]!), session((bw[1]! / 0.8 + bw[2]! / 0.9) / 2)])
  t.same(low.clock.stalls, [], 'low link: no stall after start-up')
  t.ok(low.clock.startupS! < 3, `low link: start-up ${low.clock.startupS!.toFixed(2)} s`)
  t.same([...new Set(rungsPlayed(low))], [0], `low link: every segment at the lowest rung (${rungsPlayed(low).join(' ')})`)
  t.equal(Math.round(low.clock.playedS), 24, 'played to the end')
  t.same(mid.clock.stalls, [], 'middle link: no stall')
  const r = rungsPlayed(mid)
  const changes = r.filter((q, i) => i > 0 && q !== r[i - 1]).length
  t.ok(changes <= 1, `middle link: ${changes} switch (the climb), rungs ${r.join(' ')}`)
  t.equal(r[r.length - 1], 1, 'on the middle rung, which the link sustains; not the top one, which it does not')
})

t.test('a link that drops mid-play switches down before the buffer runs out', async t => {
  const playAnswer = await serve(t)
  const link = TokenBucket.ofLink(20e6, SPEED)
  const p = await HlsPlayer.open(playAnswer, { speed: SPEED, link, maxBufferS: 10 })
  const low = 1.3 * p.ladder[0]!.variant.bandwidth
  let dropped: number | undefined
  await play(p, 15_000, pl => {
    if (dropped === undefined && pl.clock.position(pl.nowS()) >= 6) {
      dropped = pl.clock.position(pl.nowS())
      link.setRate((low / 8) * SPEED)
    }
  })
  const r = rungsPlayed(p)
  t.ok(dropped !== undefined, `the link fell at ${dropped?.toFixed(1)} s of media`)
  t.equal(r[2], 2, `on the top rung before the drop: ${r.join(' ')}`)
  t.same(p.clock.stalls, [], 'no stall')
  t.equal(r[r.length - 1], 0, 'down to the lowest rung by the end')
  t.equal(Math.round(p.clock.playedS), 24)
})

t.test('an edge that fails a segment: the next serves it, every byte still the file\'s, and the player is back on its edge after the backoff', async t => {
  let failures = 0
  // the first edge fails its first request for a rendition's bytes (a restart), then serves
  const a = await staticRangeServer(t, { dir, prefix, fail: req => (req.url!.endsWith('.mp4') && failures < 1 ? (failures++, 503) : undefined) })
  const b = await staticRangeServer(t, { dir, prefix })
  const playAnswer = { contentId: 'movie', urls: [a, b].map(s => ({ url: s.url('master.m3u8'), kind: 'edge' as const, hls: s.url('master.m3u8') })) }
  const got: FetchedSegment[] = []
  const p = await HlsPlayer.open(playAnswer, { speed: SPEED, maxBufferS: 8, onSegment: s => got.push(s) })
  await play(p)
  t.equal(p.failovers, 1, 'one failover')
  const files = new Map(ladder.map(r => [r.id, readFileSync(join(dir, `${r.id}.mp4`))]))
  t.ok(got.every(s => s.bytes.equals(files.get(s.playlist.replace('.m3u8', ''))!.subarray(s.range.offset, s.range.offset + s.range.length!))), 'every byte equal to the file')
  const video = got.filter(s => s.track === 'video' && s.kind === 'media')
  t.same(video.map(s => s.index), Array.from({ length: 12 }, (_, i) => i), 'every video segment once, in order')
  const from = video.map(s => (s.server.url === a.url('master.m3u8') ? 'a' : 'b')).join('')
  t.match(from, /b/, `some segments from the second edge: ${from}`)
  t.equal(from[from.length - 1], 'a', `back on the first edge by the end (2 s backoff): ${from}`)
  t.same(p.clock.stalls, [], 'no stall')
})

t.test('an edge that answers its master but not its media playlists: the player opens on the next (from a read-only audit, stop 41)', async t => {
  const a = await staticRangeServer(t, { dir, prefix, fail: req => (/\/v\d+\.m3u8$|\/a\d+\.m3u8$/.test(req.url!) ? 503 : undefined) })
  const b = await staticRangeServer(t, { dir, prefix })
  const playAnswer = { contentId: 'movie', urls: [a, b].map(s => ({ url: s.url('master.m3u8'), kind: 'edge' as const, hls: s.url('master.m3u8') })) }
  // a budget no loaded machine overruns: the first edge's master is the one chosen
  const p = await HlsPlayer.open(playAnswer, { speed: SPEED, probeBudgetMs: 30_000 })
  t.equal(p.current.url, b.url('master.m3u8'), 'current on the second edge')
  t.equal(p.failovers, 1, 'one failover')
  const first = p.sources.find(s => s.url === a.url('master.m3u8'))!
  t.equal(first.failures, 1, 'the first edge is down for its backoff')
  first.downUntil = 0 // its backoff over
  t.ok(p.servers.returnFromFailover(), 'playback goes back to the first edge then, as after a failover in play')
  t.equal(p.current, first)
  await p.close()
})
