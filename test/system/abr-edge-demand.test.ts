import t from 'tap'
import { request } from 'undici'
import { EDGE_TOKEN, TestCluster } from './harness.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { adaptiveManifest, ladderFiles, makeLadder } from '../helpers/edge-ladder.js'
import { get, metric, settled, startTestEdge, until } from '../helpers/edge.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { segmentOffsets, type Rendition } from '../../lib/media/rendition.js'
import type { Manifest } from '../../lib/manifest.js'

/**
 * Demand and prefill by rendition (issue 15): viewers at one edge watch the
 * low rung of an adaptive title and its audio, never the top rung. The edge's
 * demand report reaches a real router's trending (the fake upstream passes the
 * playback API to it), which answers each rendition's plays and reads; a
 * second edge's prefill then plans and fills the rungs watched, and none of
 * the top rung's chunks.
 */
const CS = 64 * 1024
const KEYS = 'k1:abr-edge-demand-test-key-0123456789'
const ADMIN = 'abr-admin'

t.test('demand per rendition reaches the router\'s trending, and prefill fills the rung viewers watch', async t => {
  const c = await TestCluster.start(t, { shards: 0, copies: 1 })
  const ladder = await makeLadder()
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  up.relayTo = c.url
  const man = adaptiveManifest('abr', ladder, CS) as Manifest & { renditions: Rendition[] }
  up.addAdaptive(man, ladderFiles(ladder))
  const [top, low, audio] = man.renditions as [Rendition, Rendition, Rendition]
  // the edge holds the token keys: a token counts as a session only once it verifies (edge/serve/play-auth.ts demandSession)
  const watching = await startTestEdge(t, up, { 'edge.readaheadChunks': 0 }, { REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: KEYS })
  const ring = KeyRing.parse(KEYS)
  // three viewers, each with a token of its own (so three plays), the low rung and the audio, every segment
  for (const vid of ['a', 'b', 'c']) {
    const base = `${watching.url}/v1/content/abr/t/${signToken(ring, { cid: 'abr', exp: Math.floor(Date.now() / 1000) + 600, vid })}`
    for (const r of [low, audio]) {
      const at = segmentOffsets(r)
      const got = await get(`${base}/${r.id}.mp4`, { range: `bytes=0-${r.init - 1}` })
      t.equal(got.status, 206)
      for (let i = 0; i + 1 < at.length; i++) await get(`${base}/${r.id}.mp4`, { range: `bytes=${at[i]}-${at[i + 1]! - 1}` })
    }
  }
  t.ok(await watching.reporter.sendReport(), 'the demand report went through')

  const trending = await (await request(`${c.url}/v1/trending?window=1h&positions=1`)).body.json() as
    { titles: { contentId: string; plays: number; positions: number[] | null; renditions?: { id: string; plays: number; reads: number }[] }[] }
  const abr = trending.titles.find(x => x.contentId === 'abr')!
  t.same(trending.titles.map(x => x.contentId), ['abr'], 'renditions are no titles of their own in the public list')
  const plain = await (await request(`${c.url}/v1/trending?window=1h`)).body.json() as { titles: Record<string, unknown>[] }
  t.same(plain.titles.map(x => [x.contentId, x.plays, x.renditions]), [['abr', 3, undefined]], 'without positions: the title alone, as before')
  t.equal(abr.plays, 3, 'three plays of the title')
  t.same(abr.renditions!.map(r => [r.id, r.plays]), [['a64', 3], ['v180', 3]], 'per rendition: the low rung and the audio, not the top rung')
  t.ok(abr.renditions!.every(r => r.reads > 0), 'and their reads')
  t.ok(Math.abs(abr.positions!.reduce((a, b) => a + b, 0) - 1) < 1e-9, 'where the title\'s reads land, for every rung')

  // a second edge plans its prefill from that
  const fresh = await startTestEdge(t, up, { 'edge.prefill.rateMBps': 0, 'edge.prefill.quietMs': 0, 'edge.prefill.budgetBytes': 64 * 1024 ** 2 },
    { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  const plan = await fresh.prefill.plan()
  const planned = new Set(plan.chunks.map(x => x.rid))
  t.same([...planned].sort(), ['a64', 'v180'], 'the plan has the watched rung and the audio, not the top rung')
  t.equal(plan.chunks.filter(x => x.rid === 'v180').length, low.chunks.length, 'every chunk of the watched rung')
  const before = up.requests('abr/v360')
  fresh.prefill.start()
  await until(() => fresh.prefill.progress?.endedAt != null, 'the pass to end')
  t.equal(fresh.prefill.progress!.result, 'done')
  t.equal(fresh.prefill.progress!.doneChunks, low.chunks.length + audio.chunks.length)
  t.equal(up.requests('abr/v360'), before, 'nothing of the top rung fetched')
  const listed = await get(`${fresh.url}/v1/cache?contentId=abr`, { authorization: `Bearer ${ADMIN}` })
  const files = (JSON.parse(listed.body.toString('utf8')) as { title: { files: { file: string; disk: number[] }[] } }).title.files
  t.same(files.map(f => [f.file, f.disk.length]), [['a64', audio.chunks.length], ['v180', low.chunks.length]], 'on disk: the rungs watched')
  t.notOk(files.some(f => f.file === top.id))
  // the next viewer of the low rung starts on a hit
  const at = segmentOffsets(low)
  const first = await get(`${fresh.url}/v1/content/abr/v180.mp4`, { range: `bytes=${at[0]}-${at[1]! - 1}` })
  t.equal(first.status, 206)
  t.equal(first.headers['content-length'], String(at[1]! - at[0]!))
  t.equal(await metric(fresh.url, 'reelcdn_edge_requests_total', { result: 'miss' }), 0, 'no miss')
  t.ok(await metric(fresh.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' }) >= 1, 'a disk hit')
  await settled(fresh)
  await settled(watching)
})
