import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startCluster, type LocalCluster } from '../lib/cluster.js'
import { CLI, startService, type RunningService, serviceOptions } from '../lib/reelcdn.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'
import { sample, scrape, until } from '../lib/scrape.js'
import { ingestTitle, TitleData } from '../lib/title.js'

/**
 * Steering (issue 17, docs/steering.md): one site of four edges, each with a
 * small cache (CACHE_PCT % of the catalog, RAM tier only), behind one router
 * on loopback; `reelcdn loadtest players --router` plays sessions (SCENARIO,
 * for --players-seconds) through /v1/play, once per variant:
 *   load          router.steering=load, edges in no site (today's: no peer
 *                 fill): every popular title on every edge
 *   affinity      router.steering=affinity with hot replication off
 *                 (router.steeringHotMinPlays 1e9): each title on its one
 *                 owner unless the load bound sends a viewer on; edges in
 *                 one site, so a viewer sent past the owner peer-fills from it
 *   affinity-hot  the defaults: as affinity, and hot titles get more owners
 *                 by demand (demand reports every 2 s)
 *   single        one edge with four times the cache (the ideal the site
 *                 should approach), steered to alone
 * and reports per variant the site's byte hit ratio (bytes the site held
 * over bytes served to players, all edges: an edge's RAM and disk hits, and
 * the bytes of chunks it peer-filled from a sibling that held them,
 * reelcdn_edge_sibling_bytes_served_total), the edges' own byte hit ratio
 * (an edge's hits only, as one edge's dashboard shows it), the origin bytes
 * (what the edges filled by either fill path, plus what players read from
 * the origin URL) and the load spread (the busiest edge's bytes served over
 * the mean).
 *
 * The shape: caches of 102 chunks, several times what the sessions playing
 * at once on an edge are in (the first shape, 26-chunk caches under ~25
 * sessions, refetched a chunk between one viewer's reads of it: origin bytes
 * ran at twice the bytes served whatever the steering, and the row measured
 * that churn more than placement). The figures count from WARM_SHARE of the
 * run on, so the caches are full and the compulsory misses of a cold start
 * are out, as in `reelcdn model` (its warm-up); the run lasts as long as the
 * scenario's arrivals and their sessions (--players-seconds does not apply).
 *
 * Readahead is off: with caches this small (26 chunks) the chunks fetched
 * ahead for ~25 viewers at once evicted each other before they were read
 * (first run: the edges filled 94-115 % of what they served whatever the
 * steering), and the origin bytes said more about readahead than steering.
 *
 * The titles are ingested once; each variant gets its own router process on
 * the same shards (so its steering flag and its trending start fresh) and
 * fresh edges with empty caches. The run plays faster than real time (SPEED)
 * so a short run covers many sessions; seed 1, so variants see one audience.
 */
const MiB = 1024 ** 2
const CHUNK = 1 * MiB
const TITLES = 64
const TITLE_BYTES = 32 * MiB
const CACHE_PCT = 5
const EDGES = 4
const SPEED = 8
/**
 * Many short sessions rather than a scenario's few long ones, so a short run
 * draws enough titles from the Zipf curve for a hit ratio to mean something:
 * 400 viewers arriving one a second (of playback time), 2 Mb/s, Zipf 0.9.
 */
const SCENARIO = { name: 'steering', description: 'bench steering row: many short sessions, Zipf 0.9', players: 400, arrivalS: 1, zipf: 0.9,
  bitrates: [{ bps: 2_000_000, weight: 1 }], startupS: 2, bufferS: 10, sessionS: 60, completeShare: 0.2, meanWatchedShare: 0.3, seekChance: 0, premiereShare: 0 }
/** the run: the arrivals, then the last sessions' length, in wall seconds */
const RUN_S = Math.ceil((SCENARIO.players * SCENARIO.arrivalS + SCENARIO.sessionS) / SPEED)
/** the figures count from this share of the run on (the caches warm before) */
const WARM_SHARE = 0.35
const EDGE_TOKEN = randomBytes(16).toString('hex')
const TOKEN_KEYS = `k1:${randomBytes(32).toString('hex')}`

export type SteeringVariant = 'load' | 'affinity' | 'affinity-hot' | 'single'

interface Outcome {
  hitRatio: number
  edgeHitRatio: number
  originBytes: number
  servedBytes: number
  served: number[]
  /** plays the router steered to each edge first (reelcdn_router_plays_steered_total): the load its bound counts */
  plays: number[]
  sessions: number
}

export const steeringRow: BenchRow = {
  name: 'steering',
  title: 'steering: a site of four small edges, load-only vs content affinity, next to one edge with their cache together',
  needs: {},

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const o = ctx.opts
    const svc = serviceOptions(o)
    let c: LocalCluster | undefined
    try {
      c = await startCluster(ctx.procs, join(ctx.dir, 'cluster'), { shards: 3, copies: 1, chunkSize: CHUNK, service: svc })
      const ids: string[] = []
      for (let i = 0; i < TITLES; i++) {
        const t = new TitleData(`bench-steer-${i}`, TITLE_BYTES, CHUNK)
        await ingestTitle(c.router.url, c.token, t)
        ids.push(t.contentId)
      }
      const cacheBytes = Math.round((TITLES * TITLE_BYTES * CACHE_PCT) / 100 / CHUNK) * CHUNK
      ctx.log(`steering: ingested ${TITLES} titles of ${TITLE_BYTES / MiB} MiB; edges of ${cacheBytes / MiB} MiB (${CACHE_PCT} % of the catalog) each`)
      const what = `${RUN_S} s at ${SPEED}x (counted from ${Math.round(WARM_SHARE * RUN_S)} s), ${TITLES} titles × ${TITLE_BYTES / MiB} MiB, ${CHUNK / MiB} MiB chunks`
      await writeFile(join(ctx.dir, 'steering-scenario.json'), JSON.stringify(SCENARIO))
      for (const variant of o.steeringVariants as SteeringVariant[]) {
        const r = await runVariant(ctx, c, variant, ids, cacheBytes)
        const mean = r.served.reduce((a, b) => a + b, 0) / r.served.length
        const label = variant === 'single' ? `one edge at ${CACHE_PCT * EDGES} %` : `${EDGES} edges at ${CACHE_PCT} %, ${variant}`
        ctx.figure({ row: 'steering', name: `${label}: site byte hit ratio`, value: 100 * r.hitRatio, unit: '%', note: `${r.sessions} sessions; ${what}` })
        if (variant !== 'single')
          ctx.figure({ row: 'steering', name: `${label}: edges' own byte hit ratio`, value: 100 * r.edgeHitRatio, unit: '%', note: 'RAM and disk hits only: a byte peer-filled from a sibling is a miss here' })
        ctx.figure({ row: 'steering', name: `${label}: origin bytes`, value: r.originBytes / 1e6, unit: 'MB',
          note: `${(100 * r.originBytes / r.servedBytes).toFixed(1)} % of the ${(r.servedBytes / 1e6).toFixed(0)} MB the edges served; edges' fills (direct or relay) + players' reads of the origin URL` })
        if (variant !== 'single') {
          ctx.figure({ row: 'steering', name: `${label}: load spread`, value: Math.max(...r.served) / mean, unit: 'max/mean',
            note: `bytes served per edge: ${r.served.map(b => (b / 1e6).toFixed(0)).join(', ')} MB (goal: at most 1.25)` })
          const plays = r.plays.reduce((a, b) => a + b, 0) / r.plays.length
          ctx.figure({ row: 'steering', name: `${label}: play spread`, value: Math.max(...r.plays) / plays, unit: 'max/mean',
            note: `plays steered to each edge first: ${r.plays.join(', ')} (the load the router's bound counts)` })
        }
      }
      return []
    } finally {
      await c?.stop()
    }
  },
}

async function runVariant(ctx: BenchContext, c: LocalCluster, variant: SteeringVariant, ids: string[], cacheBytes: number): Promise<Outcome> {
  const o = ctx.opts
  const svc = serviceOptions(o)
  const dir = join(ctx.dir, `steering-${variant}`)
  const env = { REELCDN_SHARD_TOKEN: c.shardToken, REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS, REELCDN_LOG_REQUESTS: 'false' }
  let router: RunningService | undefined
  const edges: RunningService[] = []
  try {
    // the run plays SPEED times faster than real time, so the bound's memory of plays (router.steeringLoadHalfLifeMs, 5 min
    // of wall time) is made SPEED times shorter too: it stays the same share of a session's length as in real time
    const rc = JSON.parse(await readFile(join(ctx.dir, 'cluster', 'router.json'), 'utf8')) as { router?: Record<string, unknown> }
    rc.router = { ...rc.router, steeringLoadHalfLifeMs: Math.round(300_000 / SPEED),
      // affinity: hot replication off, one owner per title (the load bound still applies)
      ...(variant === 'affinity' ? { steeringHotMinPlays: 1e9 } : {}) }
    const routerCfg = join(dir, 'router.json')
    await mkdir(dir, { recursive: true })
    await writeFile(routerCfg, JSON.stringify(rc))
    router = await startService(ctx.procs, 'router', 'router ready', ['-c', routerCfg, '--data-dir', join(dir, 'router'),
      '--steering', variant === 'load' ? 'load' : 'affinity', '--log-level', 'info'], { ...svc, env })
    const n = variant === 'single' ? 1 : EDGES
    // local to the players (loopback), one site, heartbeats and demand reports often enough for a short run
    const edgeCfg = join(dir, 'edge.json')
    await writeFile(edgeCfg, JSON.stringify({ edge: { networks: ['127.0.0.0/8'], heartbeatMs: 1000, demandReportMs: 2000, prefill: { window: 'never' } } }))
    for (let i = 0; i < n; i++) {
      edges.push(await startService(ctx.procs, 'edge', 'edge ready', ['-c', edgeCfg, '--host', '127.0.0.1', '--port', '0', '--upstream', router.url,
        '--data-dir', join(dir, `edge-${i}`), '--ram', String(variant === 'single' ? cacheBytes * EDGES : cacheBytes), '--disk', '0',
        '--id', `edge-${i}`, ...(variant === 'load' ? [] : ['--site', 'bench']), '--readahead', '0', '--log-level', 'info'], { ...svc, env }))
    }
    const r = router
    await until(async () => {
      const res = await request(`${r.url}/v1/play/${ids[0]}`)
      const body = await res.body.json() as { urls?: { kind: string }[] }
      return (body.urls ?? []).filter(u => u.kind === 'edge').length === n
    }, 30_000)
    const outDir = join(dir, 'loadtest')
    const args = ['loadtest', 'players', '--scenario', join(ctx.dir, 'steering-scenario.json'), '--router', router.url, '--edge-metrics', edges.map(e => e.url).join(','),
      '--titles', ids.join(','), '--duration', String(RUN_S), '--speed', String(SPEED), '--seed', '1', '--no-ceiling', '--out', outDir]
    ctx.log(`steering (${variant}): reelcdn ${args.join(' ')}`)
    const run = ctx.procs.run('reelcdn loadtest', process.execPath, [o.cli ?? CLI, ...args])
    run.catch(() => {}) // awaited below; a failure while the warm-up sleeps is reported there
    await sleep(WARM_SHARE * RUN_S * 1000)
    const before = await Promise.all(edges.map(e => scrape(e.url)))
    const routerBefore = await scrape(router.url)
    await run
    const after = await Promise.all(edges.map(e => scrape(e.url)))
    const routerAfter = await scrape(router.url)
    const rd = (name: string, labels = '') => sample(routerAfter, name, labels) - sample(routerBefore, name, labels)
    const ed = (name: string, labels = '') => edges.map((_, i) => sample(after[i]!, name, labels) - sample(before[i]!, name, labels))
    const fmt = (v: number[]) => v.map(x => (x / 1e6).toFixed(0)).join('/')
    ctx.log(`steering (${variant}) diag: steered ${['owner', 'hot_owner', 'over_bound', 'load'].map(c => `${c}=${rd('reelcdn_router_steered_total', `choice="${c}"`)}`).join(' ')}; ` +
      `served MB ${fmt(ed('reelcdn_edge_bytes_served_total'))} hit ${fmt(ed('reelcdn_edge_bytes_served_total', 'result="ram_hit"'))} miss ${fmt(ed('reelcdn_edge_bytes_served_total', 'result="miss"'))} coal ${fmt(ed('reelcdn_edge_bytes_served_total', 'result="coalesced"'))} sibling ${fmt(ed('reelcdn_edge_sibling_bytes_served_total'))}; ` +
      `fill MB direct ${fmt(ed('reelcdn_edge_fill_bytes_total', 'path="direct"'))} relay ${fmt(ed('reelcdn_edge_fill_bytes_total', 'path="relay"'))} peer ${fmt(ed('reelcdn_edge_peer_fill_bytes_total'))}; ` +
      `peer fills ${['served', 'timeout', 'refused', 'error', 'held'].map(c => `${c}=${ed('reelcdn_edge_peer_fills_total', `outcome="${c}"`).reduce((a, b) => a + b, 0)}`).join(' ')}; ` +
      `owner served ${['ram', 'disk', 'fill'].map(w => `${w}=${ed('reelcdn_edge_peer_served_total', `from="${w}"`).reduce((a, b) => a + b, 0)}`).join(' ')}; ` +
      `evictions ${ed('reelcdn_edge_evictions_total', 'tier="ram"').reduce((a, b) => a + b, 0)}; requests ${['ram_hit', 'miss', 'coalesced'].map(r => `${r}=${ed('reelcdn_edge_requests_total', `result="${r}"`).reduce((a, b) => a + b, 0)}`).join(' ')}`)
    // the players' reads of the origin URL over the whole run (none expected: the edges answer)
    const res = JSON.parse(await readFile(join(outDir, 'result.json'), 'utf8')) as { players: { sessions: number; bytesFromOrigin?: number } }
    const delta = (name: string, labels = '') => edges.map((_, i) => sample(after[i]!, name, labels) - sample(before[i]!, name, labels))
    const served = delta('reelcdn_edge_bytes_served_total')
    const hits = delta('reelcdn_edge_bytes_served_total', 'result="ram_hit"').map((v, i) => v + delta('reelcdn_edge_bytes_served_total', 'result="disk_hit"')[i]!)
    const sibling = delta('reelcdn_edge_sibling_bytes_served_total')
    const filled = delta('reelcdn_edge_fill_bytes_total')
    const total = served.reduce((a, b) => a + b, 0)
    const sum = (v: number[]) => v.reduce((a, b) => a + b, 0)
    return {
      hitRatio: total > 0 ? (sum(hits) + sum(sibling)) / total : NaN,
      edgeHitRatio: total > 0 ? sum(hits) / total : NaN,
      originBytes: filled.reduce((a, b) => a + b, 0) + (res.players.bytesFromOrigin ?? 0),
      served, servedBytes: total, sessions: res.players.sessions,
      plays: edges.map((_, i) => rd('reelcdn_router_plays_steered_total', `edge="edge-${i}"`)),
    }
  } finally {
    for (const e of edges) await e.stop()
    await router?.stop()
  }
}
