import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { LinkShare } from '../../tools/loadtest/abr-viewers.js'
import type { Scenario } from '../../tools/loadtest/audience.js'
import type { LoadResult } from '../../tools/loadtest/report.js'
import { request } from 'undici'
import { HIT_RESULTS } from '../../lib/metrics.js'
import { cpuSeconds, reapedChildrenCpuSeconds, type ProcessGroup } from './proc.js'

/**
 * One pass of the abr-hit row (bench/rows/abr-hit.ts): `reelcdn loadtest
 * players` as a child process against one edge, and what each process of
 * the cluster spent meanwhile. The load test reads the edge's and the
 * router's /metrics before and after (tools/loadtest/edge-counters.ts), so
 * the cache figures are the servers' own counters for this pass alone.
 *
 * CPU (user + system) comes from /proc: the live servers' own counters
 * before and after, the load test's from this process's reaped-children
 * counters around its run (nothing else of the bench exits meanwhile).
 * The edge's /metrics, read here too, split its bytes by kind of file (a
 * single-file title, an adaptive title's video or audio renditions) and
 * count the bytes readahead fetched that left the cache unread.
 */
export interface PassFigures {
  seed: number
  wallS: number
  sessions: number
  failed: number
  cut: number
  errors: string[]
  byteHitRatio: number | null
  originOffload: number | null
  edgeBytesServed: number
  upstreamBytes: number
  routerBytesServed: number | null
  /** body bytes the viewers received */
  viewerBytes: number
  /** bytes the viewers played */
  playedBytes: number
  rebufferRatio: number
  stallsPerSession: number
  startupMs: { p50: number; p95: number | null }
  /** ABR viewers only: average BANDWIDTH on screen, time share and bytes per rung, switches */
  abr?: { averageBps: number; rungs: { name: string; bandwidth: number; share: number; bytes: number }[]; switchesPerViewer: number; links: Record<string, number> }
  /** the edge's bytes served and hit bytes by kind of file (title, video, audio) */
  kinds: Record<string, { served: number; hits: number }>
  /** bytes readahead (or prefill) fetched that left the cache before anyone read them */
  unreadAheadBytes: number
  /** the edge's own counters over the pass, per series (requests by result, upstream requests, fills, readahead, evictions, disk writes) */
  edgeCounters: Record<string, number>
  /** CPU seconds each process used during the pass */
  cpu: { edge: number; router: number; shards: number; loadtest: number }
}

export interface PassTarget {
  procs: ProcessGroup
  cli: string
  ticks: number
  edge: { url: string; pid: number }
  router: { url: string; pid: number }
  shardPids: number[]
}

export interface PassSpec {
  scenario: Scenario
  titles: string[]
  seed: number
  speed: number
  links: LinkShare[]
  /** the run's time bound, wall seconds (it ends sooner when every viewer has left) */
  durationS: number
  dir: string
}

const sum = async (pids: number[], ticks: number) => (await Promise.all(pids.map(p => cpuSeconds(p, ticks)))).reduce((a, b) => a + b, 0)

async function cpuNow(t: PassTarget) {
  return { edge: await sum([t.edge.pid], t.ticks), router: await sum([t.router.pid], t.ticks), shards: await sum(t.shardPids, t.ticks),
    loadtest: await reapedChildrenCpuSeconds(t.ticks) }
}

interface EdgeKinds { kinds: Record<string, { served: number; hits: number }>; unreadAhead: number; series: Record<string, number> }

/** The edge's counters kept per series in the pass's figures (JSON): where the upstream bytes went. */
const FAMILIES = ['reelcdn_edge_requests_total', 'reelcdn_edge_upstream_requests_total', 'reelcdn_edge_fills_total', 'reelcdn_edge_readahead_total',
  'reelcdn_edge_evictions_total', 'reelcdn_edge_disk_writes_total', 'reelcdn_edge_promotions_total', 'reelcdn_edge_fill_retries_total',
  'reelcdn_edge_disk_write_drops_total', 'reelcdn_edge_unread_ahead_bytes_total', 'reelcdn_edge_fill_failures_total']

const HIT = new RegExp(`result="(${HIT_RESULTS.join('|')})"`)

async function edgeKinds(url: string): Promise<EdgeKinds> {
  const res = await request(`${url}/metrics`, { headersTimeout: 10_000, bodyTimeout: 10_000 })
  if (res.statusCode !== 200) throw new Error(`${url}/metrics answered ${res.statusCode}: ${await res.body.text()}`)
  const out: EdgeKinds = { kinds: {}, unreadAhead: 0, series: {} }
  for (const line of (await res.body.text()).split('\n')) {
    const v = Number(line.slice(line.lastIndexOf(' ') + 1))
    if (FAMILIES.some(f => line.startsWith(f) && /[ {]/.test(line[f.length] ?? ''))) out.series[line.slice(0, line.lastIndexOf(' '))] = v
    if (line.startsWith('reelcdn_edge_file_bytes_served_total{')) {
      const kind = /file="([^"]+)"/.exec(line)?.[1] ?? 'unknown'
      const k = out.kinds[kind] ??= { served: 0, hits: 0 }
      k.served += v
      if (HIT.test(line)) k.hits += v
    } else if (/^reelcdn_edge_unread_ahead_bytes_total[ {]/.test(line)) out.unreadAhead += v
  }
  return out
}

function kindsDelta(a: EdgeKinds, b: EdgeKinds): Record<string, { served: number; hits: number }> {
  const out: Record<string, { served: number; hits: number }> = {}
  for (const [k, x] of Object.entries(b.kinds)) {
    const y = a.kinds[k] ?? { served: 0, hits: 0 }
    if (x.served - y.served > 0) out[k] = { served: x.served - y.served, hits: x.hits - y.hits }
  }
  return out
}

export async function runPass(t: PassTarget, s: PassSpec): Promise<PassFigures> {
  const scenarioFile = join(s.dir, 'scenario.json')
  await writeFile(scenarioFile, JSON.stringify(s.scenario, null, 2))
  const args = ['loadtest', 'players', '--scenario', scenarioFile, '--target', t.edge.url, '--router-metrics', t.router.url,
    '--titles', s.titles.join(','), '--duration', String(s.durationS), '--speed', String(s.speed), '--seed', String(s.seed),
    '--links', s.links.map(l => `${l.bps / 1e6}:${l.weight}`).join(','), '--no-ceiling', '--progress-interval', '10', '--out', s.dir]
  const kinds0 = await edgeKinds(t.edge.url)
  const before = await cpuNow(t)
  const t0 = performance.now()
  await t.procs.run('reelcdn loadtest', process.execPath, [t.cli, ...args])
  const wallS = (performance.now() - t0) / 1000
  const after = await cpuNow(t)
  const kinds1 = await edgeKinds(t.edge.url)
  const r = JSON.parse(await readFile(join(s.dir, 'result.json'), 'utf8')) as LoadResult
  const p = r.players
  if (!p || !r.cache) throw new Error(`loadtest players against ${t.edge.url} gave no ${p ? 'cache figures' : 'player figures'}: ${r.metricsError ?? ''}`)
  const a = p.abr
  return {
    seed: s.seed, wallS, sessions: p.sessions, failed: p.failed, cut: p.cutBeforeStart ?? 0, errors: p.errors ?? [],
    byteHitRatio: r.cache.byteHitRatio, originOffload: r.cache.originOffload, edgeBytesServed: r.cache.edgeBytesServed,
    upstreamBytes: r.cache.upstreamBytes, routerBytesServed: r.cache.routerBytesServed, viewerBytes: p.bytesReceived, playedBytes: p.bytes,
    rebufferRatio: p.rebufferRatio, stallsPerSession: p.stallsPerSession, startupMs: { p50: p.startupMs.p50, p95: p.startupMs.p95 ?? null },
    ...(a ? { abr: { averageBps: a.averageBps, rungs: a.rungs.map(g => ({ name: g.name, bandwidth: g.bandwidth, share: g.share, bytes: g.bytes })),
      switchesPerViewer: a.rungSwitchesPerViewer, links: a.links } } : {}),
    kinds: kindsDelta(kinds0, kinds1),
    edgeCounters: Object.fromEntries(Object.entries(kinds1.series).map(([k, v]) => [k, v - (kinds0.series[k] ?? 0)]).filter(([, v]) => v !== 0)), unreadAheadBytes: kinds1.unreadAhead - kinds0.unreadAhead,
    cpu: { edge: after.edge - before.edge, router: after.router - before.router, shards: after.shards - before.shards, loadtest: after.loadtest - before.loadtest },
  }
}
