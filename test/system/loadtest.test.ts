import t, { type Test } from 'tap'
import { join } from 'node:path'
import { loadConfig } from '../../lib/config.js'
import { quietLogger } from '../../lib/logger.js'
import { startEdge } from '../../edge/main.js'
import { httpMode } from '../../tools/loadtest/http-mode.js'
import { playersMode, type Scenario } from '../../tools/loadtest/players-mode.js'
import { cacheDelta, readEdgeCounters } from '../../tools/loadtest/edge-counters.js'
import { discoverTitles } from '../../tools/loadtest/target.js'
import { metric } from '../helpers/edge.js'
import { TestCluster, randomBody } from './harness.js'

/**
 * Each load test mode, briefly, against an in-process cluster (three shards,
 * a router, an edge): the figures it reports must be what the servers counted.
 */
const CS = 256 * 1024

async function cluster(t: Test) {
  const c = await TestCluster.start(t, { chunkSize: CS })
  for (const [id, n] of [['alpha', 6], ['beta', 4], ['gamma', 3]] as const)
    t.equal((await c.ingest(id, randomBody(n * CS - 1000))).status, 201)
  const dir = join(c.shardDir(0), '..', 'edge')
  const edge = await startEdge(loadConfig({ env: {}, overrides: {
    'edge.port': 0, 'edge.upstream': c.url, 'edge.dataDir': dir, 'edge.ramBytes': 8 * CS, 'edge.diskBytes': 64 * CS,
    'cluster.chunkSize': CS, 'http.shutdownGraceMs': 500, 'log.level': 'silent' } }), { logger: quietLogger('edge'), env: {} })
  t.teardown(() => edge.close())
  return { c, edge }
}

t.test('http mode: requests and hit ratio agree with the edge\'s counters', async t => {
  const { c, edge } = await cluster(t)
  const titles = await discoverTitles(edge.url, ['alpha', 'beta', 'gamma'])
  t.same(titles.map(x => x.size), [6 * CS - 1000, 4 * CS - 1000, 3 * CS - 1000])
  const before = await readEdgeCounters([edge.url])
  const responsesBefore = await metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'range' })
  const r = await httpMode({ target: edge.url, titles, zipf: 1, rangeBytes: 64 * 1024, openingShare: 0.2, connections: 4,
    durationS: 2, requests: 300, seed: 3, measureCeiling: false })
  const after = await readEdgeCounters([edge.url])
  t.equal(r.http!.requests, 300, 'bounded by the request count')
  t.same(r.http!.errorsByStatus, {}, 'no errors')
  t.equal(await metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'range' }) - responsesBefore, 300, 'the edge answered 300 ranges')
  const d = cacheDelta(before, after)
  t.ok(d.edgeBytesServed >= 300 * 60 * 1024, `the edge served ${d.edgeBytesServed} body bytes`)
  t.ok(d.byteHitRatio! > 0.5, `hits after the first fills (${d.byteHitRatio})`)
  void c
})

t.test('players mode: bytes received and hit ratio equal what the edge counted', async t => {
  const { edge } = await cluster(t)
  const titles = await discoverTitles(edge.url, ['alpha', 'beta', 'gamma'])
  const scenario: Scenario = { name: 'test', players: 6, arrivalS: 0.05, zipf: 1, bitrates: [{ bps: 8_000_000, weight: 1 }],
    startupS: 0.5, bufferS: 2, sessionS: 8, completeShare: 1, meanWatchedShare: 1, seekChance: 0, premiereShare: 0.3 }
  const before = await readEdgeCounters([edge.url])
  const r = await playersMode({ scenario, titles, durationS: 20, speed: 4, seed: 5,
    play: async id => ({ contentId: id, urls: [{ url: `${edge.url}/v1/content/${id}` }] }) })
  const d = cacheDelta(before, await readEdgeCounters([edge.url]))
  const p = r.players!
  t.equal(p.sessions, 6)
  t.equal(p.failed, 0, 'no failed sessions')
  t.ok(p.bytes > 0 && p.bytes <= p.bytesReceived, `played ${p.bytes} of ${p.bytesReceived} received`)
  t.equal(p.bytesReceived, d.edgeBytesServed, 'bytes received equal the edge\'s bytes served')
  t.ok(p.startupMs.p50 > 0 && p.startupMs.p50 <= p.startupMs.p95!, 'start-up percentiles ordered')
  t.ok(p.rebufferRatio >= 0 && p.rebufferRatio < 0.5, `rebuffer ratio ${p.rebufferRatio}`)
  t.ok(d.byteHitRatio !== null && d.byteHitRatio > 0, `byte hit ratio ${d.byteHitRatio}`)
})
