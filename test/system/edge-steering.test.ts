import t from 'tap'
import { request } from 'undici'
import { EDGE_TOKEN, TestCluster } from './harness.js'
import { startTestEdge, until } from '../helpers/edge.js'

/** An edge's own heartbeats put it into steering; its farewell on shutdown takes it out at once, before any silence timeout. */
t.test('an edge registers by its heartbeats and leaves steering when it shuts down', async t => {
  const c = await TestCluster.start(t, { overrides: { 'router.edgeSilenceMs': 3600_000 } })
  await c.ingest('film', Buffer.alloc(5000, 9))
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.heartbeatMs': 50, 'edge.id': 'edge-hb' }, { REELCDN_EDGE_TOKEN: EDGE_TOKEN })
  const ids = async () => ((await (await request(`${c.url}/v1/play/film`)).body.json()) as { urls: { id: string }[] }).urls.map(u => u.id)
  await until(async () => (await ids()).includes('edge-hb'), 'the edge in steering')
  t.same(await ids(), ['edge-hb', 'origin'])
  t.ok(edge.reporter.heartbeats.ok >= 1)
  await edge.close()
  t.same(await ids(), ['origin'], 'gone at once, though the silence timeout is an hour')
})
