import t from 'tap'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { playSession, type SessionReport } from '../../client/abr/play-session.js'
import { SERVER_SWITCH_DEFAULTS } from '../../client/abr/server-switch.js'
import type { PlayResponse } from '../../client/player.js'
import { parseManifest } from '../../lib/manifest.js'
import { segmentOffsets, type Rendition } from '../../lib/media/rendition.js'
import { makeLadder } from '../helpers/abr-ladder.js'
import { CLI } from '../helpers/spawn.js'
import { staticRangeServer } from '../helpers/static-range-server.js'

/**
 * `reelcdn play` and the session under it (client/abr/play-session.ts),
 * against static range servers standing in for the router and the edges
 * (docs/abr.md's URLs: masters under `/v1/content/{id}/t/{token}/`, the
 * manifest at `/v1/content/{id}/meta`, `/v1/play/{id}` naming the masters).
 * The manifest's chunk size is 64 KiB, so a short ladder has many chunks
 * and the check of each fetched chunk against its digest is exercised.
 * A 24 s title at 4x: a session takes about 6 s (at 8x, a busy machine's pauses, eight times over, made stalls).
 */
const SPEED = 4
const CHUNK = 64 * 1024
const dir = t.testdir()
const prefix = '/v1/content/movie/t/TOKEN.abc/'
let ladder: Rendition[]
let manifest: unknown

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

t.before(async () => {
  ladder = await makeLadder(dir, { durationS: 24, rungs: [{ id: 'v90', height: 90, kbps: 150 }, { id: 'v180', height: 180, kbps: 400 },
    { id: 'v360', height: 360, kbps: 1000 }], audioKbps: 64 })
  const renditions = ladder.map(r => {
    const f = readFileSync(join(dir, `${r.id}.mp4`))
    const chunks = Array.from({ length: Math.ceil(f.length / CHUNK) }, (_, i) => sha(f.subarray(i * CHUNK, (i + 1) * CHUNK)))
    return { ...r, sha256: sha(f), chunks, blocks: chunks }
  })
  manifest = parseManifest({ contentId: 'movie', version: 'v1', size: 0, chunkSize: CHUNK, sha256: sha(Buffer.alloc(0)), chunks: [], contentType: 'application/vnd.apple.mpegurl',
    title: 'movie', categories: [], rights: { regions: ['*'], availableFrom: null, availableUntil: null }, createdAt: 0, renditions })
})

/** Servers with the ladder under the token path, the first also answering /v1/play (naming them all, in order) and the manifest. */
async function cluster(tt: Parameters<typeof staticRangeServer>[0], opts: { bps?: number }[], meta = manifest) {
  const json: Record<string, unknown> = {}
  const servers = []
  for (const o of opts) servers.push(await staticRangeServer(tt, { dir, prefix, json, ...o }))
  const play: PlayResponse = { contentId: 'movie', token: 'TOKEN.abc',
    urls: servers.map(s => ({ url: s.url('master.m3u8'), kind: 'edge' as const, hls: s.url('master.m3u8'), dash: s.url('manifest.mpd') })) }
  json['/v1/play/movie'] = play
  json['/v1/content/movie/meta'] = meta
  return { servers, play }
}

t.test('reelcdn play: /v1/play, the ladder through a 0.5 Mb/s link, every fetched chunk equal to the manifest\'s digest', async t => {
  const { servers } = await cluster(t, [{}])
  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>(resolve =>
    execFile(process.execPath, [CLI, 'play', 'movie', '--router', servers[0]!.base, '--link', '0.5', '--speed', String(SPEED), '--json'],
      { timeout: 25_000 }, (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr })))
  t.equal(out.code, 0, `exit 0 ${out.stderr}`)
  const r = JSON.parse(out.stdout) as SessionReport
  t.ok(r.ended, 'played to the end')
  t.equal(r.stalls, 0, 'no stall')
  t.same([...new Set(r.rungsPlayed)], [0], `0.5 Mb/s holds the lowest rung only: ${r.rungsPlayed.join(' ')}`)
  t.equal(r.rungs[0]!.name, 'v90')
  t.ok(r.rungs[0]!.seconds > 20, `v90 on screen ${r.rungs[0]!.seconds.toFixed(1)} s`)
  t.ok(r.startupS! > 0 && r.startupS! < 5, `start-up ${r.startupS} s`)
  t.equal(r.verify?.chunksBad, 0, 'no chunk differed')
  // every chunk a player fetches whole: those that end at or before the last segment's end. The trailing index
  // (mfra) no segment covers may start in the chunk before the file's last, when the file ends just past a chunk
  // boundary: how much that leaves depends on where the encode's sizes fall, so it is computed, not a share
  const fetchedWhole = (x: Rendition) => { const end = segmentOffsets(x).at(-1)!; return end - (end % CHUNK) }
  const want = fetchedWhole(ladder[0]!) + fetchedWhole(ladder[3]!)
  t.ok(r.verify!.chunksOk >= 4 && r.verify!.bytesVerified >= want,
    `${r.verify!.chunksOk} chunks, ${r.verify!.bytesVerified} bytes verified (at least ${want}): every chunk of v90 and the audio before their trailing index`)
  t.ok(servers[0]!.log.filter(l => l.path.endsWith('.mp4') || l.path.endsWith('.m3u8')).every(l => l.path.startsWith(prefix)),
    'every playlist and segment request kept the token path')
})

t.test('a byte that differs from the manifest is reported and fails the command', async t => {
  const bad = JSON.parse(JSON.stringify(manifest)) as { renditions: { id: string; chunks: string[] }[] }
  bad.renditions.find(r => r.id === 'a64')!.chunks[0] = 'f'.repeat(64)
  const { play } = await cluster(t, [{}], bad)
  const r = await playSession(play, { speed: SPEED, verify: true, linkBps: 400_000 })
  t.equal(r.verify?.chunksBad, 1, 'the audio\'s first chunk')
  t.match(r.verify!.errors[0], /^a64 chunk 0 \(bytes 0-65535\): SHA-256 [0-9a-f]{64}, the manifest says f{64}$/)
})

t.test('quality low on the first server for lowForS: a trial of the next, a switch, and the top rung there', async t => {
  // the first edge is slow for everyone (a shared 60 kB/s of wall time, so about 0.12 Mb/s of scenario time at 4x), the second unpaced
  const { servers, play } = await cluster(t, [{ bps: 60_000 }, {}])
  const r = await playSession(play, { speed: SPEED, verify: false,
    controller: { serverSwitch: { ...SERVER_SWITCH_DEFAULTS, lowForS: 4 } } })
  t.equal(r.firstServer, servers[0]!.url('master.m3u8'), 'started on the first edge (/v1/play order)')
  t.equal(r.lastServer, servers[1]!.url('master.m3u8'), 'ended on the second')
  t.ok(r.trials >= 1 && r.serverSwitches === 1, `trials ${r.trials}, switches ${r.serverSwitches}`)
  // the first edge cannot carry even the middle rung: a top-rung segment among the last six came from the second
  t.ok(r.rungsPlayed.slice(-6).includes(2), `the top rung on the second edge: ${r.rungsPlayed.join(' ')}`)
  t.ok(servers[1]!.log.length > 0 && servers[1]!.log.every(l => l.path.startsWith(prefix)), 'the second edge was asked with the token path kept')
  t.equal(r.failovers, 0, 'a switch for quality, not a failover')
})

t.test('a single-file title is refused by name', async t => {
  const { servers } = await cluster(t, [{}])
  const single = { contentId: 'movie', urls: [{ url: `${servers[0]!.base}/v1/content/movie?token=x`, kind: 'edge' as const }] }
  await t.rejects(playSession(single), { code: 'CDN_ERR_PLAYLIST', message: /names no HLS master playlist/ })
})
