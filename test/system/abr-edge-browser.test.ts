import t, { type Test } from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import type { Page } from 'playwright-core'
import { EDGE_TOKEN, TestCluster, TOKEN, TOKEN_KEYS } from './harness.js'
import { metric, startTestEdge, until } from '../helpers/edge.js'
import { ingestLadder, makeLadder, type LadderFile } from '../helpers/abr.js'
import { launch } from '../helpers/browser.js'

/**
 * Real players on the whole stack (three shards, the router, an edge), with
 * play tokens required by the router and the edge: headless Chromium opens
 * the edge's watch page, which asks the router's /v1/play (another origin)
 * where to play, and plays the tokened master from the edge with hls.js, or
 * the MPD with dash.js. Unthrottled, hls.js climbs to the top rung; with the
 * page's link held to 1 Mb/s by DevTools network emulation, below the top
 * rung's 2 Mb/s, it settles on a lower rung and keeps playing; a seek lands
 * and plays on; no media or page error on the way. Every media request is a
 * byte range of a rendition file under the token in the path, answered by
 * the edge (byte-exactness of those ranges is abr-edge.test.ts's part).
 */
const SECONDS = 24
const RUNGS = [{ id: 'v360', height: 360, kbps: 2000 }, { id: 'v180', height: 180, kbps: 450 }, { id: 'v90', height: 90, kbps: 150 }]

// a router that requires play tokens lets an edge fill with its read credential only
const READ = 'edge-read-credential'
const c = await TestCluster.start(t, { overrides: { 'router.requireToken': true, 'router.edgeSilenceMs': 3600_000 }, env: { REELCDN_ROUTER_READ_TOKEN: READ } })
const dir = join(c.dir, 'ladder')
await mkdir(dir, { recursive: true })
const files: LadderFile[] = await makeLadder(dir, SECONDS, { rungs: RUNGS })
await ingestLadder(c.url, 'abr', files, TOKEN, { title: 'Ladder' })
const edge = await startTestEdge(t, { url: c.url, token: READ },
  { 'edge.requireToken': true, 'edge.heartbeatMs': 50, 'edge.id': 'edge-w', 'edge.ramBytes': 64 * 1024 ** 2 },
  { REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS })
await until(async () => ((await (await request(`${c.url}/v1/play/abr`)).body.json()) as { urls: { id: string }[] }).urls[0]?.id === 'edge-w',
  'the edge first in steering')
const browser = await launch()
t.teardown(() => browser.close())
const edgeHost = new URL(edge.url).host
const VIDEO = 'document.getElementById("video")'

interface State { host: string; level: number; levels: { height: number; bitrate: number }[]; stalls: number; t: number; err: string | null; kind: string }
const state = (page: Page) => page.evaluate(`({ host: reelcdn.host, level: reelcdn.level, levels: reelcdn.levels, stalls: reelcdn.stalls, kind: reelcdn.kind,
  t: ${VIDEO}.currentTime, err: ${VIDEO}.error && ${VIDEO}.error.message })`) as Promise<State>

/** Polls `expr` in the page (not waitForFunction: the page's CSP refuses the eval it needs; page.evaluate is the DevTools protocol's). */
async function poll(page: Page, expr: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await page.evaluate(expr))) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${expr}; page log: ${String(await page.evaluate(`document.getElementById('log').textContent`))}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

/** The edge's watch page in a fresh page, its link throttled to `kbps` when given, playing. */
async function open(t: Test, query = '', kbps = 0) {
  const page = await browser.newPage()
  t.teardown(() => page.close())
  const errors: string[] = []
  page.on('pageerror', e => errors.push(e.message))
  const media: string[] = []
  page.on('request', r => {
    const u = new URL(r.url())
    if (u.pathname.endsWith('.mp4')) media.push(`${u.host} ${u.pathname.split('/').pop()} ${r.headers()['range'] ?? 'no range'} ${u.pathname.includes('/t/') ? 'tokened' : 'no token'}`)
  })
  if (kbps) {
    const cdp = await page.context().newCDPSession(page)
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: kbps * 1000 / 8, uploadThroughput: 1_000_000 })
  }
  await page.goto(`${edge.url}/watch/abr${query}`)
  await poll(page, `${VIDEO}.currentTime > 0.5`, 30_000)
  return { page, errors, media }
}

const videoSegments = (media: string[]) => media.filter(m => / v\d+\.mp4 /.test(m)).map(m => m.split(' ')[1]!)

t.test('hls.js from the edge: climbs to the top rung, seeks, every media request a tokened byte range', async t => {
  const { page, errors, media } = await open(t)
  const s = await state(page)
  t.equal(s.host, edgeHost, 'plays from the edge, the first URL /v1/play gave')
  t.equal(s.kind, 'abr')
  t.same(s.levels.map(l => l.height).sort((a, b) => a - b), [90, 180, 360], 'every rung from the master')
  await poll(page, 'reelcdn.levels[reelcdn.level] && reelcdn.levels[reelcdn.level].height === 360', 20_000)
  t.pass('climbed to the top rung')
  await page.evaluate(`${VIDEO}.currentTime = 16`)
  await poll(page, `!${VIDEO}.seeking && ${VIDEO}.currentTime > 17`, 20_000)
  const after = await state(page)
  t.equal(after.err, null, 'no media error')
  t.same(errors, [], 'no page error')
  t.ok(media.length > 4, `media requests: ${media.length}`)
  t.same(media.filter(m => !m.startsWith(edgeHost) || !/ bytes=\d+-\d+ tokened$/.test(m)), [], 'each one to the edge, a closed byte range, the token in the path')
  t.ok(videoSegments(media).includes('v360.mp4'), 'the top rung was read')
  t.ok(await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { file: 'video' }) > 0 ||
    await metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'range' }) >= media.length, 'the edge served them')
})

t.test('hls.js on a 1 Mb/s link settles below the top rung and keeps playing', async t => {
  const { page, errors, media } = await open(t, '', 1000)
  const t0 = Date.now()
  const p0 = (await state(page)).t
  await new Promise(r => setTimeout(r, 12_000))
  const s = await state(page)
  const played = s.t - p0
  const wall = (Date.now() - t0) / 1000
  const last = videoSegments(media).slice(-3)
  t.comment(`played ${played.toFixed(1)} s of media in ${wall.toFixed(1)} s; stalls ${s.stalls}; video segments ${videoSegments(media).join(' ')}`)
  t.ok(last.length === 3 && !last.includes('v360.mp4'), `the last video segments below the top rung: ${last.join(', ')}`)
  t.ok(s.levels[s.level] !== undefined && s.levels[s.level]!.height < 360, `the page shows a lower rung (${s.levels[s.level]?.height}p)`)
  t.ok(played > wall * 0.75, 'no long stall: media time kept up with the clock')
  t.equal(s.err, null, 'no media error')
  t.same(errors, [], 'no page error')
})

t.test('dash.js plays the MPD of the same files from the edge', async t => {
  const { page, errors, media } = await open(t, '?player=dash')
  await poll(page, `${VIDEO}.currentTime > 3`, 30_000)
  const s = await state(page)
  t.match(await page.textContent('#player'), /^dash\.js/)
  t.equal(s.host, edgeHost)
  t.equal(s.err, null, 'no media error')
  t.same(errors, [], 'no page error')
  t.ok(videoSegments(media).length > 0 && media.some(m => m.includes(' a64.mp4 ')), 'video and audio segments as tokened byte ranges from the edge')
  t.same(media.filter(m => !m.startsWith(edgeHost) || !/ bytes=\d+-\d+ tokened$/.test(m)), [])
})
