import t from 'tap'
import { fresh } from '../helpers/fresh.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { adaptiveManifest, ladderFiles, makeLadder } from '../helpers/edge-ladder.js'
import { metric, settled, startTestEdge, until } from '../helpers/edge.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { masterPlaylist, mediaPlaylist } from '../../lib/media/hls.js'
import { mpd } from '../../lib/media/dash.js'
import { segmentOffsets, type Rendition } from '../../lib/media/rendition.js'
import type { Manifest } from '../../lib/manifest.js'

/**
 * An adaptive title with edge.serveThreads (issue 15): a thread answers a
 * rendition's RAM hits as it answers a title's, and the playlists from its own
 * copy of the manifest, tokens in the path checked there too. Which thread
 * accepts a connection is the kernel's choice, so every request goes on a
 * connection of its own and every answer is checked, whoever gave it; the
 * threads' counter shows they did serve.
 */
const CS = 64 * 1024
const KEYS = 'k1:abr-edge-threads-test-key-0123456789'


t.test('rendition hits and playlists are answered byte-exact over many connections, and the threads answer some', async t => {
  const ladder = await makeLadder()
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const man = adaptiveManifest('abr', ladder, CS) as Manifest & { renditions: Rendition[] }
  up.addAdaptive(man, ladderFiles(ladder))
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'edge.readaheadChunks': 0, 'edge.requireToken': true }, { REELCDN_TOKEN_KEYS: KEYS })
  const tok = signToken(KeyRing.parse(KEYS), { cid: 'abr', exp: Math.floor(Date.now() / 1000) + 600, vid: 'v1' })
  const base = `${edge.url}/v1/content/abr/t/${tok}`
  // warm: every rendition whole, through the main thread or a thread's relay
  for (const f of ladder) {
    const r = await fresh(`${base}/${f.id}.mp4`)
    if (r.status !== 200 || !r.body.equals(f.bytes)) t.fail(`warming ${f.id}: ${r.status}`)
  }
  const total = man.renditions.reduce((n, r) => n + r.chunks.length, 0)
  await until(() => edge.cache.ram.stats().entries === total, 'every chunk in RAM')
  const fetched = up.requests('abr')
  const servedBefore = await metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' })

  // segments inside one chunk (the thread's hit path) and across two (relayed), plus the playlists
  const reqs: { url: string; range?: [number, number]; want: Buffer }[] = []
  for (const r of man.renditions) {
    const bytes = ladder.find(f => f.id === r.id)!.bytes
    const at = segmentOffsets(r)
    const ranges: [number, number][] = [[0, r.init - 1], ...at.slice(0, -1).map((s, i): [number, number] => [s, at[i + 1]! - 1])]
    for (let i = 0; i < 40; i++) {
      const [s, e] = ranges[i % ranges.length]!
      // a short read inside the segment's first chunk, or the whole segment
      const end = i % 2 === 0 ? Math.min(e, Math.floor(s / CS) * CS + CS - 1) : e
      reqs.push({ url: `${base}/${r.id}.mp4`, range: [s, end], want: bytes.subarray(s, end + 1) })
    }
    reqs.push({ url: `${base}/${r.id}.m3u8`, want: Buffer.from(mediaPlaylist(r)) })
  }
  for (let i = 0; i < 10; i++) {
    reqs.push({ url: `${base}/master.m3u8`, want: Buffer.from(masterPlaylist(man.renditions)) })
    reqs.push({ url: `${base}/manifest.mpd`, want: Buffer.from(mpd(man.renditions)) })
  }
  for (let round = 0; round < 5; round++) {
    const got = await Promise.all(reqs.map(q => fresh(q.url, q.range ? { range: `bytes=${q.range[0]}-${q.range[1]}` } : {})))
    got.forEach((r, i) => {
      const q = reqs[i]!
      if (r.status !== (q.range ? 206 : 200) || !r.body.equals(q.want)) t.fail(`${q.url.replace(base, '')} ${q.range}: ${r.status}, ${r.body.length} bytes`)
      if (r.headers['access-control-allow-origin'] !== '*') t.fail('no CORS header')
    })
    await new Promise(r => setTimeout(r, 30)) // a flush of the threads' counts
    if (await metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' }) > servedBefore + 20) break
  }
  t.ok(await metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' }) > servedBefore, 'the threads served some')
  t.equal(up.requests('abr'), fetched, 'every segment read was a hit')
  await until(async () => await metric(edge.url, 'reelcdn_edge_file_bytes_served_total') === await metric(edge.url, 'reelcdn_edge_bytes_served_total'),
    'every byte served, by a thread or not, counted by kind of file')
  t.ok(await metric(edge.url, 'reelcdn_edge_playlists_total', { kind: 'mpd' }) >= 10, 'playlists counted wherever answered')
  t.ok(await metric(edge.url, 'reelcdn_http_requests_total', { route: '/v1/content/:id/t/:token/:file' }) > 0, 'answers counted by route')

  // playlists alone: the threads answer them from their own copy of the manifest, not by relaying
  const before = await metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' })
  const want = masterPlaylist(man.renditions)
  for (let i = 0; i < 20; i++) {
    const got = await Promise.all(Array.from({ length: 10 }, () => fresh(`${base}/master.m3u8`)))
    if (!got.every(r => r.status === 200 && r.body.toString('utf8') === want)) t.fail('a master playlist differed')
    await new Promise(r => setTimeout(r, 30))
    if (await metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' }) > before) break
  }
  t.ok(await metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' }) > before, 'a thread answered playlists itself')

  // a thread checks the token as the main thread does
  for (let i = 0; i < 10; i++) {
    t.equal((await fresh(`${edge.url}/v1/content/abr/v360.mp4`, { range: 'bytes=0-9' })).status, 403)
    t.equal((await fresh(`${edge.url}/v1/content/abr/master.m3u8`)).status, 403)
  }
  await settled(edge)
})
