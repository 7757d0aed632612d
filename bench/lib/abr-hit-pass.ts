import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { LinkShare } from '../../tools/loadtest/abr-viewers.js'
import type { Scenario } from '../../tools/loadtest/audience.js'
import type { LoadResult } from '../../tools/loadtest/report.js'
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

export async function runPass(t: PassTarget, s: PassSpec): Promise<PassFigures> {
  const scenarioFile = join(s.dir, 'scenario.json')
  await writeFile(scenarioFile, JSON.stringify(s.scenario, null, 2))
  const args = ['loadtest', 'players', '--scenario', scenarioFile, '--target', t.edge.url, '--router-metrics', t.router.url,
    '--titles', s.titles.join(','), '--duration', String(s.durationS), '--speed', String(s.speed), '--seed', String(s.seed),
    '--links', s.links.map(l => `${l.bps / 1e6}:${l.weight}`).join(','), '--no-ceiling', '--progress-interval', '10', '--out', s.dir]
  const before = await cpuNow(t)
  const t0 = performance.now()
  await t.procs.run('reelcdn loadtest', process.execPath, [t.cli, ...args])
  const wallS = (performance.now() - t0) / 1000
  const after = await cpuNow(t)
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
    cpu: { edge: after.edge - before.edge, router: after.router - before.router, shards: after.shards - before.shards, loadtest: after.loadtest - before.loadtest },
  }
}
