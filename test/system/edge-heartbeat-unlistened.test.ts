import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { startTestEdge, until } from '../helpers/edge.js'

/**
 * An edge's heartbeat and demand reports name it by the URL it serves on.
 * During an upgrade (edge/run/supervisor.ts) the old worker stops listening
 * before its last reports go out; the URL was read off the listening socket
 * each time, which by then has no address, so the last report threw
 * ("Cannot read properties of null (reading 'family')") and the old worker's
 * last demand counts were lost. The URL is taken once, when the edge starts
 * serving.
 */
t.test('a heartbeat after the edge stopped listening still names the edge and goes out', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const seen: { id: string; url: string }[] = []
  up.heartbeat = hb => { seen.push(hb); return {} }
  const edge = await startTestEdge(t, { url: up.url, token: undefined }, { 'edge.id': 'edge-a', 'edge.heartbeatMs': 60_000 },
    { REELCDN_EDGE_TOKEN: 'edge-credential-for-tests' })
  await until(() => seen.length > 0, 'the first heartbeat')
  const url = seen[0]!.url
  t.equal(url, edge.url)
  await new Promise<void>(resolve => edge.server.http.server.close(() => resolve()))
  t.equal(await edge.reporter.sendHeartbeat(), true, 'the heartbeat went out')
  t.equal(seen.at(-1)!.url, url, 'naming the URL the edge served on')
})
