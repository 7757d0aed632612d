import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { PlayResponse } from '../../client/player.js'
import { playersMode, type Scenario } from '../../tools/loadtest/players-mode.js'
import type { LoadResult } from '../../tools/loadtest/report.js'
import { makeLadder } from '../helpers/abr-ladder.js'
import { CLI } from '../helpers/spawn.js'
import { staticRangeServer } from '../helpers/static-range-server.js'

/**
 * `reelcdn loadtest players` on an adaptive title: each viewer an ABR player
 * behind a link drawn from the mix, against static range servers standing in
 * for an edge and the router (docs/abr.md's URLs). Small and bounded: a 16 s
 * title of two rungs (a low top rung: the fast viewers climb within the
 * title's eight segments even when a busy machine's pauses, times the speed,
 * weigh on their first estimates), four viewers at 4x, a few seconds a run.
 */
const SPEED = 4
const dir = t.testdir()
const quick: Scenario = { name: 'quick', players: 4, arrivalS: 0, zipf: 1, bitrates: [{ bps: 1e6, weight: 1 }],
  startupS: 2, bufferS: 10, sessionS: 600, completeShare: 1, meanWatchedShare: 1, seekChance: 0, premiereShare: 0 }

t.before(async () => {
  await makeLadder(dir, { durationS: 16, rungs: [{ id: 'v90', height: 90, kbps: 150 }, { id: 'v180', height: 180, kbps: 500 }], audioKbps: 64 })
})

t.test('viewers on a slow and a fast link: time share and bytes per rung, switches, start-up; origin share when the edge fails', async t => {
  const prefix = '/v1/content/movie/t/TOKEN.abc/'
  const edge = await staticRangeServer(t, { dir, prefix, fail: () => 503 })
  const origin = await staticRangeServer(t, { dir, prefix })
  const play = async (id: string): Promise<PlayResponse> => ({ contentId: id, token: 'TOKEN.abc', urls: [
    { url: edge.url('master.m3u8'), kind: 'edge', hls: edge.url('master.m3u8') },
    { url: origin.url('master.m3u8'), kind: 'origin', hls: origin.url('master.m3u8') }] })
  const r = await playersMode({ scenario: quick, titles: [{ contentId: 'movie', size: 1, adaptive: true }], play, durationS: 20, speed: SPEED, seed: 3,
    links: [{ bps: 0.4e6, weight: 1 }, { bps: 20e6, weight: 1 }] })
  const p = r.players!
  t.equal(p.sessions, 4)
  t.equal(p.failed, 0, `no failed session ${p.errors?.join('; ') ?? ''}`)
  const a = p.abr!
  t.equal(a.viewers, 4)
  t.same(Object.keys(a.links).sort(), ['20000000', '400000'], 'both links drawn')
  t.same(a.rungs.map(g => g.name), ['v90', 'v180'])
  t.ok(Math.abs(a.rungs.reduce((s, g) => s + g.share, 0) - 1) < 1e-9, 'time shares sum to one')
  t.ok(a.rungs.every(g => g.share > 0 && g.bytes > 0), `both rungs played: ${a.rungs.map(g => `${g.name} ${(100 * g.share).toFixed(0)} % ${g.bytes} B`).join(', ')}`)
  t.ok(a.averageBps > a.rungs[0]!.bandwidth && a.averageBps < a.rungs[1]!.bandwidth, `average ${a.averageBps.toFixed(0)} b/s between the rungs`)
  t.ok(p.startupMs.p50 > 0 && p.startupMs.p99 >= p.startupMs.p50, `start-up p50 ${p.startupMs.p50.toFixed(0)} ms, p99 ${p.startupMs.p99.toFixed(0)} ms`)
  t.equal(p.bytesFromOrigin, p.bytesReceived, 'every byte from the origin URL: the edge failed every request')
  t.ok(p.bytesReceived > 0)
  t.ok(r.durationS < 15, `the run ended with its viewers (a 16 s title at 4x: 4 s of play), in ${r.durationS.toFixed(1)} s, not at its 20 s bound`)
})

t.test('the CLI against one server (--target): an adaptive title found by its manifest, the figures printed and saved', async t => {
  const srv = await staticRangeServer(t, { dir, prefix: '/v1/content/movie/', json: { '/v1/content/movie/meta': { contentId: 'movie', renditions: [{ size: 1000 }, { size: 2000 }] } } })
  const out = t.testdir()
  const res = await new Promise<{ err: Error | null; stdout: string; stderr: string }>(resolve =>
    execFile(process.execPath, [CLI, 'loadtest', 'players', '--target', srv.base, '--titles', 'movie', '--players', '2', '--duration', '5',
      '--speed', String(SPEED), '--links', '0.4:1,20:1', '--no-ceiling', '-o', out], { timeout: 25_000 }, (err, stdout, stderr) => resolve({ err, stdout, stderr })))
  t.error(res.err, res.stderr)
  t.match(res.stdout, /adaptive viewers 2 \(links .*Mb\/s\): average bitrate [0-9.]+ Mb\/s, rung switches/)
  t.match(res.stdout, /time share and bytes per rung: v90 [0-9.]+ % [0-9.]+ MB, v180/)
  const r = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as LoadResult
  t.equal(r.players!.abr!.viewers, 2)
  t.match(readFileSync(join(out, 'report.html'), 'utf8'), /Time share per rung/)
  t.ok(srv.log.some(l => l.path === '/v1/content/movie/master.m3u8'), 'the players read the master at the target')
})
