import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../lib/config/config.js'
import { formatReport, runReport } from '../../edge/report.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { freshDir, get, metric, startTestEdge } from '../helpers/edge.js'

/**
 * `reelcdn edge report` on a small log the edge wrote itself: players read
 * chunks 0 1 2 3 0 1 of a title through an edge whose only tier holds two
 * chunks under LRU. LRU misses all six; MIN keeps 0 and 1 (bypassing 2 and 3,
 * needed never again) and hits the last two: 2 of 6 equal chunks, 1/3 of the
 * bytes. The report must say so, and a restarted edge must serve it on /metrics.
 */
const CS = 64 * 1024

t.test('the report replays the edge\'s own log through MIN and each policy, and the edge serves the result', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(4 * CS, 'report')
  await up.addTitle('movie', bytes, { chunkSize: CS })
  const dataDir = freshDir(t)
  const overrides = { 'edge.dataDir': dataDir, 'edge.ramBytes': 2 * CS, 'edge.diskBytes': 0, 'edge.ramPolicy': 'lru',
    'edge.readaheadChunks': 0, 'cluster.chunkSize': CS }
  const edge = await startTestEdge(t, up, overrides)
  for (const i of [0, 1, 2, 3, 0, 1]) {
    const r = await get(`${edge.url}/v1/content/movie`, { range: `bytes=${i * CS}-${i * CS + CS - 1}` })
    t.equal(r.status, 206)
  }
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'miss' }), 6, 'LRU with room for two misses every read')
  await edge.close() // flushes the request log

  const lines = readFileSync(join(dataDir, 'requests.log'), 'utf8').trim().split('\n')
  const log = lines.filter(l => !/\tupstream\t/.test(l))
  t.equal(log.length, 6, 'one line per chunk read')
  const upstream = lines.filter(l => /\tupstream\t/.test(l))
  t.ok(upstream.length >= 1, 'and lines of the bytes fetched upstream')
  t.equal(upstream.reduce((a, l) => a + Number(l.split('\t')[3]), 0), 6 * CS, 'all of them: six chunk fills')
  t.match(log[0], /^\d+\tmovie\/0\/[0-9a-f]{64}\t65536\t65536\tmiss\ta:127\.0\.0\.1\|movie$/)

  const config = loadConfig({ env: {}, overrides: { 'edge.dataDir': dataDir, 'edge.ramBytes': 2 * CS, 'edge.diskBytes': 0 } })
  const report = await runReport(config, 1_700_000_000_000)
  t.equal(report.reads, 6)
  t.equal(report.ratios.achieved!.byteHitRatio, 0)
  t.equal(report.ratios.achieved!.offload, 0, 'every byte read came from upstream')
  t.equal(report.ratios.min!.offload, 1 - 4 / 6, 'MIN fetches four chunks for six read')
  t.equal(report.ratios.min!.byteHitRatio, 1 / 3, 'MIN hits the second reads of chunks 0 and 1')
  t.equal(report.ratios.lru!.byteHitRatio, 0, 'the simulated LRU agrees with the LRU that served')
  for (const p of ['lru', 's3fifo', 'wtinylfu', 'session']) t.ok(report.ratios[p]!.byteHitRatio <= 1 / 3, `${p} does not beat the optimum`)
  t.match(formatReport(report), /min\s+0\.3333\s+0\.3333\s+1\.000/)

  const again = await startTestEdge(t, up, overrides)
  t.equal(await metric(again.url, 'reelcdn_edge_report_byte_hit_ratio', { policy: 'min' }), 1 / 3)
  t.equal(await metric(again.url, 'reelcdn_edge_report_of_optimum', { policy: 'achieved' }), 0)
  t.equal(await metric(again.url, 'reelcdn_edge_report_origin_offload', { policy: 'min' }), 1 - 4 / 6)
  t.equal(await metric(again.url, 'reelcdn_edge_report_timestamp_seconds'), 1_700_000_000)
})
