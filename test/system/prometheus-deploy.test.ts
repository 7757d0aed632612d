import t, { type Test } from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { directCluster } from '../helpers/direct-cluster.js'
import { EDGE_TOKEN, randomBody, TestCluster } from './harness.js'
import { startTestEdge } from '../helpers/edge.js'
import { selfSigned } from '../helpers/tls.js'
import { ensurePrometheus, promtool, startPrometheus, type RunningPrometheus } from '../helpers/prometheus.js'
import { ALERTS, dashboardQueries, dashboards, metricNames, substitute, topLevelOperands } from '../helpers/promql.js'

/**
 * Issue 18's acceptance: a real Prometheus (Debian's package, installed like
 * ffmpeg; its absence fails the test by name) scrapes a cluster — three
 * shards, the router, an edge serving TLS and heartbeating — every second
 * while players read through the edge. Then every dashboard panel's query and
 * variable, found by reading deploy/grafana/dashboards/*.json, and every rule
 * Prometheus loaded from deploy/prometheus/alerts.yml is evaluated through the
 * HTTP API: each must parse, read only metric names Prometheus holds, and
 * return data (a rule's expression returns nothing until it fires, so its
 * operands are asked: the signal and the guard beside each threshold). The
 * rules are loaded with every `for:` cut to 1s, and a stopped shard is seen
 * to fire ReelcdnShardDown. About 15 s on a quiet machine.
 */
const CHUNK = 65536
const TITLES = 4
const TITLE_BYTES = 12 * CHUNK

/** Polls `cond` (state Prometheus reports) until it holds: a barrier, bounded. */
async function until<T>(what: string, cond: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await cond()
    if (v !== undefined && v !== false) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

async function scalar(p: RunningPrometheus, expr: string): Promise<number | undefined> {
  const r = await p.query(expr)
  const v = (r.data?.result as { value: [number, string] }[] | undefined)?.[0]?.value[1]
  return v === undefined ? undefined : Number(v)
}

async function firing(p: RunningPrometheus): Promise<{ labels: Record<string, string>; state: string }[]> {
  const r = await p.api('alerts') as { data: { alerts: { labels: Record<string, string>; state: string }[] } }
  return r.data.alerts.filter(a => a.state === 'firing')
}

/** Players read every title through the edge, whole and by ranges, until Prometheus has seen several scrapes of it. */
async function playerLoad(t: Test, edgeUrl: string, ca: Buffer): Promise<number> {
  const pool = new Pool(edgeUrl, { connections: 4, connect: { ca } })
  t.teardown(() => pool.close())
  let responses = 0
  const start = Date.now()
  for (let round = 0; round < 40 && (round < 3 || Date.now() - start < 3500); round++) {
    await Promise.all(Array.from({ length: TITLES }, async (_, i) => {
      const from = (round * 7919 + i * 104729) % (TITLE_BYTES - 1000)
      for (const range of [undefined, `bytes=${from}-${from + 999}`]) {
        const r = await pool.request({ path: `/v1/content/prom-${i}`, method: 'GET', headers: range ? { range } : {} })
        await r.body.dump()
        if (r.statusCode !== (range ? 206 : 200)) throw new Error(`the edge answered ${r.statusCode} to a player`)
        responses++
      }
    }))
  }
  return responses
}

async function startCluster(t: Test, dir: string) {
  const c: TestCluster = await directCluster(t, { copies: 2, chunkSize: CHUNK })
  const { cert, key } = selfSigned(dir)
  // a RAM tier of a third of the catalog: reads hit RAM, the disk tier and miss
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, {
    'http.tlsCertFile': cert, 'http.tlsKeyFile': key, 'edge.id': 'edge-prom', 'edge.heartbeatMs': 200,
    'edge.ramBytes': TITLES * TITLE_BYTES / 3, 'edge.diskBytes': 4 * TITLES * TITLE_BYTES,
  }, { REELCDN_EDGE_TOKEN: EDGE_TOKEN })
  return { c, edge, cert }
}

t.test('promtool accepts the alert rules', async t => {
  await ensurePrometheus()
  const r = await promtool('check', 'rules', ALERTS)
  t.equal(r.code, 0, r.output)
  t.match(r.output, /SUCCESS: \d+ rules found/)
})

t.test('a real Prometheus scraping a cluster under load: every dashboard query and alert expression returns data, and a stopped shard fires ReelcdnShardDown', async t => {
  await ensurePrometheus()
  const dir = t.testdir()
  const rulesText = readFileSync(ALERTS, 'utf8')
  const ruleCount = [...rulesText.matchAll(/^\s+- alert: /gm)].length
  let fors = 0
  const quick = rulesText.replace(/^(\s+for: )\S+$/gm, (_m, p: string) => { fors++; return `${p}1s` })
  t.equal(fors, ruleCount, 'every rule has a for: that the test can shorten')
  writeFileSync(join(dir, 'alerts.yml'), quick)

  const { c, edge, cert } = await startCluster(t, dir)
  t.match(edge.url, /^https:/, 'the edge serves TLS')
  // Prometheus starts while the titles go in: both take seconds on a busy machine
  const ingests = (async () => {
    for (let i = 0; i < TITLES; i++) t.equal((await c.ingest(`prom-${i}`, randomBody(TITLE_BYTES))).status, 201, `title ${i} ingested`)
  })()
  const prom = await startPrometheus(t, { intervalS: 1, ruleFiles: [join(dir, 'alerts.yml')], jobs: [
    { name: 'reelcdn-router', urls: [c.url] },
    { name: 'reelcdn-shard', urls: c.shards.map(s => s!.url) },
    { name: 'reelcdn-edge', urls: [edge.url], caFile: cert },
  ] }).finally(() => ingests)
  await ingests
  await until('every target up', async () => (await scalar(prom, 'count(up == 1)')) === 5)
  // before any fill: the edge's error outcomes are there, at 0 (lib/metrics.ts, zeroEdgeErrorSeries)
  t.equal(await scalar(prom, 'sum(reelcdn_edge_fills_total{result="error"})'), 0, 'fill errors exported at 0')
  t.equal(await scalar(prom, 'count(reelcdn_edge_fill_failures_total)'), 5, 'each fill failure reason exported at 0 (timeout, upstream, digest, purged, withdrawn)')

  const responses = await playerLoad(t, edge.url, readFileSync(cert))
  for (let i = 0; i < TITLES; i++) t.equal((await c.get(`/v1/content/prom-${i}`, { range: 'bytes=0-99' })).status, 206, 'a read through the router')
  await c.router.repairer.run()
  // barrier: Prometheus has the load's last counts, and then at least two scrapes of every target begun after
  // the repair pass ended, so rate() and increase() have two samples of each series that pass made (the
  // repair's counters); a scrape begun before that may still be ingested after this point, hence the third
  await until('the responses scraped', async () => ((await scalar(prom, 'sum(reelcdn_edge_player_responses_total)')) ?? 0) >= responses)
  const scrapes = (await scalar(prom, 'max(count_over_time(up[5m]))'))!
  await until('three more scrapes of every target', async () => ((await scalar(prom, 'min(count_over_time(up[5m]))')) ?? 0) >= scrapes + 3)

  const names = await prom.metricNames()
  t.ok(names.has('reelcdn_router_edges') && names.has('reelcdn_tls_certificate_expiry_timestamp_seconds'), 'the metrics issue 18 added are scraped')
  t.equal(await scalar(prom, 'reelcdn_router_edges{state="live"}'), 1, 'the router counts the heartbeating edge live')
  const ask = async (where: string, expr: string, wantData: boolean) => {
    const r = await prom.query(expr)
    t.equal(r.status, 'success', `${where}: evaluates${r.error ? ` (${r.error})` : ''}`)
    for (const name of metricNames(expr)) t.ok(names.has(name), `${where}: metric ${name} exists`)
    if (wantData) t.ok((r.data?.result.length ?? 0) > 0, `${where}: returns data`)
  }
  let panels = 0
  for (const d of dashboards()) {
    for (const q of dashboardQueries(d)) {
      await ask(`${q.file} ${q.panel}`, substitute(q.expr), true)
      panels++
    }
  }
  t.ok(panels >= 40, `${panels} dashboard queries evaluated`)

  const loaded = await until('every rule evaluated', async () => {
    const r = await prom.api('rules') as { data: { groups: { rules: { name: string; query: string; health: string; lastError?: string }[] }[] } }
    const rules = r.data.groups.flatMap(g => g.rules)
    return rules.length > 0 && rules.every(x => x.health !== 'unknown') ? rules : undefined
  })
  t.equal(loaded.length, ruleCount, 'Prometheus loaded every rule of alerts.yml')
  for (const rule of loaded) {
    t.equal(rule.health, 'ok', `${rule.name}: evaluated by Prometheus${rule.lastError ? ` (${rule.lastError})` : ''}`)
    await ask(rule.name, rule.query, false)
    const operands = topLevelOperands(rule.query).filter(o => metricNames(o).length > 0)
    t.ok(operands.length > 0, `${rule.name}: reads a metric`)
    for (const [k, o] of operands.entries()) await ask(`${rule.name} operand ${k + 1} of ${operands.length}`, o, true)
  }

  // the edge's certificate is a one-day one: the expiry alerts fire from the condition itself
  const before = await until('the certificate alert', async () => {
    const a = await firing(prom)
    return a.some(x => x.labels.alertname === 'ReelcdnCertificateExpiryImminent' && x.labels.service === 'edge') ? a : undefined
  })
  t.notOk(before.some(a => a.labels.alertname === 'ReelcdnShardDown'), 'no shard down while all are up')
  await c.stopShard(2)
  await c.router.cluster.health.checkAll()
  const after = await until('ReelcdnShardDown firing', async () => {
    const a = await firing(prom)
    return a.some(x => x.labels.alertname === 'ReelcdnShardDown') ? a : undefined
  })
  t.same(after.filter(a => a.labels.alertname === 'ReelcdnShardDown').map(a => a.labels.shard), ['shard-3'], 'the stopped shard, and only it')
})
