import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startCluster, type LocalCluster } from '../lib/cluster.js'
import { CLI, startService, type RunningService, serviceOptions } from '../lib/reelcdn.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'
import { ingestTitle, TitleData } from '../lib/title.js'

/**
 * Players (issue 6): a fixed scenario on a local cluster (3 shards, copies=3,
 * router, one edge with an empty cache, each a child process), measured with
 * `reelcdn loadtest players --target <edge> --router-metrics <router>`, which
 * plays sessions through the player client and reads the edge's and the
 * router's /metrics before and after.
 *
 * The fixture is fixed so runs compare: TITLES titles of TITLE_BYTES each
 * (8 MiB chunks, so the ingest stays small), seed 1, real-time playback, the
 * scenario and duration from --players-scenario / --players-seconds. The edge
 * starts cold, so the byte hit ratio includes the first viewers' misses.
 */
const MiB = 1024 ** 2
const CHUNK = 8 * MiB
const TITLES = 6
const TITLE_BYTES = 48 * MiB

interface PlayersResult {
  durationS: number
  generatorCeilingMBps: number | null
  players: { sessions: number; failed: number; cutBeforeStart?: number; startupMs: { p50: number; p95: number | null; p99: number }
    rebufferRatio: number; stallsPerSession: number; bytes: number; bytesReceived: number }
  cache?: { byteHitRatio: number | null; originOffload: number | null }
}

export const playersRow: BenchRow = {
  name: 'players',
  title: 'players: QoE and byte hit ratio of a loadtest scenario through one edge',
  needs: {},

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const o = ctx.opts
    const svc = serviceOptions(o)
    let c: LocalCluster | undefined
    let edge: RunningService | undefined
    try {
      c = await startCluster(ctx.procs, join(ctx.dir, 'cluster'), { shards: 3, copies: 3, chunkSize: CHUNK, service: svc })
      const ids: string[] = []
      for (let i = 0; i < TITLES; i++) {
        const t = new TitleData(`bench-movie-${i}`, TITLE_BYTES, CHUNK)
        await ingestTitle(c.router.url, c.token, t)
        ids.push(t.contentId)
      }
      ctx.log(`players: ingested ${TITLES} titles of ${TITLE_BYTES / MiB} MiB; starting an edge with an empty cache`)
      edge = await startService(ctx.procs, 'edge', 'edge ready', ['--host', '127.0.0.1', '--port', '0', '--upstream', c.router.url,
        '--data-dir', join(ctx.dir, 'edge'), '--log-level', 'info'], { ...svc, env: { REELCDN_LOG_REQUESTS: 'false' } })
      const outDir = join(ctx.dir, 'loadtest')
      const args = ['loadtest', 'players', '--scenario', o.playersScenario, '--target', edge.url, '--router-metrics', c.router.url, '--titles', ids.join(','),
        '--duration', String(o.playersSeconds), '--seed', '1', '--out', outDir]
      ctx.log(`players: reelcdn ${args.join(' ')}`)
      await ctx.procs.run('reelcdn loadtest', process.execPath, [o.cli ?? CLI, ...args])
      const r = JSON.parse(await readFile(join(outDir, 'result.json'), 'utf8')) as PlayersResult
      const p = r.players
      const what = `${o.playersScenario}, ${o.playersSeconds} s, ${p.sessions} sessions (${p.failed} failed, ${p.cutBeforeStart ?? 0} cut before start-up), ` +
        `${TITLES} titles × ${TITLE_BYTES / MiB} MiB, cold edge`
      ctx.figure({ row: 'players', name: 'start-up delay p95', value: p.startupMs.p95 ?? NaN, unit: 'ms', note: `p50 ${p.startupMs.p50.toFixed(0)} ms, p99 ${p.startupMs.p99.toFixed(0)} ms; ${what}` })
      ctx.figure({ row: 'players', name: 'rebuffer ratio', value: 100 * p.rebufferRatio, unit: '% of watch time', note: `${p.stallsPerSession.toFixed(2)} stalls per session` })
      ctx.figure({ row: 'players', name: 'edge byte hit ratio', value: 100 * (r.cache?.byteHitRatio ?? NaN), unit: '%',
        note: `from the edge's /metrics before and after (ram, disk and joined-fill bytes count as hits); ${(p.bytes / 1e6).toFixed(0)} MB played, ` +
          `${(p.bytesReceived / 1e6).toFixed(0)} MB received` })
      ctx.figure({ row: 'players', name: 'origin offload', value: 100 * (r.cache?.originOffload ?? NaN), unit: '%',
        note: '1 - the router\'s bytes served / the bytes the players received; negative when whole-chunk fills and readahead fetch more than the players read in the run' })
      const mbps = p.bytesReceived / 1e6 / r.durationS
      ctx.figure({ row: 'players', name: 'generator ceiling', value: r.generatorCeilingMBps ?? NaN, unit: 'MB/s',
        note: `the players' own limit (player client from an in-memory server); this run received ${mbps.toFixed(1)} MB/s` })
      return []
    } finally {
      await edge?.stop()
      await c?.stop()
    }
  },
}
