import { loadConfig, type Config } from '../../lib/config/config.js'

/**
 * Settings for `reelcdn cluster` (tools/cluster.ts) under test: every member on
 * port 0 (the router learns the shards' ports as they start; distinct loopback
 * hosts keep the shard urls unique), small tiers and chunks, no background
 * passes, data under `dataDir`.
 */
export function localClusterConfig(dataDir: string, extra: Record<string, unknown> = {}): Readonly<Config> {
  return loadConfig({ env: {}, overrides: {
    'local.dataDir': dataDir, 'log.level': 'silent', 'http.shutdownGraceMs': 0,
    'cluster.chunkSize': 65536, 'origin.reserveBytes': 0, 'origin.scrubRateMBps': 0, 'origin.memoryCacheBytes': 0,
    'cluster.shards': [1, 2, 3].map(i => ({ id: `shard-${i}`, url: `http://127.0.0.${i}:0`, weight: 1 })),
    'router.port': 0, 'router.repair.intervalMs': 0, 'router.catalogRefreshMs': 3600_000,
    'edge.port': 0, 'edge.heartbeatMs': 0, 'edge.demandReportMs': 0, 'edge.prefill.window': 'never',
    'edge.ramBytes': 16 * 1024 ** 2, 'edge.diskBytes': 64 * 1024 ** 2,
    ...extra,
  } as never })
}
