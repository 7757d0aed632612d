import { Command } from 'commander'
import { addFlags, commonFlags, configFromFlags, runUntilSignalled, type Flag } from '../lib/cli.js'
import type { Config } from '../lib/config/config.js'
import { serviceLogger, type Logger } from '../lib/logger.js'
import { newRegistry, routerEdgeMetrics, routerFillGrantMetrics, routerSteeringMetrics } from '../lib/metrics.js'
import { loadSecret, requireAdmin } from '../lib/security/auth.js'
import { reloadRoute, Reloader, type ReloadResult } from '../lib/reload.js'
import { routerReloadTable } from './reload-table.js'
import { ensureWritableDir } from '../lib/storage/data-dir.js'
import { ConfigError } from '../lib/errors.js'
import type { Cluster } from './cluster/cluster.js'
import type { Manifests } from './cluster/manifests.js'
import { buildCluster } from './build.js'
import { Catalog } from './playback/catalog.js'
import { FillGrants } from './read/fill-grants.js'
import { ChunkReader } from './read/reader.js'
import { BufferPool } from './ingest/buffer-pool.js'
import { Ingestor } from './ingest/ingest.js'
import { Publisher } from './ingest/publish.js'
import type { Repairer } from './repair/repair.js'
import { RouterServer } from './server.js'
import { repairCommand } from './repair/repair-cli.js'
import { join } from 'node:path'
import { loadKeyRing } from '../lib/security/tokens.js'
import { EdgeRegistry } from './playback/edge-registry.js'
import { Trending } from './playback/trending.js'
import { TrendingPeers } from './playback/trending-peers.js'
import { EdgePeers } from './playback/edge-peers.js'
import { Sessions } from './playback/sessions.js'
import { SessionPeers } from './playback/session-peers.js'
import { RegionMap } from './playback/play.js'
import { NO_TOKEN_KEYS, playbackRoutes } from './playback/playback-api.js'
import { RouterConsole } from './console/status.js'
import { consoleRoutes } from '../lib/console/routes.js'
import { HotTitles } from './playback/hot-titles.js'
import { Steering } from './playback/steering.js'
import { TitleDeletes } from './ingest/deletes.js'

/**
 * Starts a router: the cluster view (ring, shard pools, health checks), the
 * read, ingest and repair machinery, then the HTTP API. Content lives on the
 * shards; the router's own state (trending counters, viewers' positions) is in
 * SQLite under router.dataDir, and it and the edge registry are shared with
 * router.peers (trending-peers.ts, session-peers.ts, edge-peers.ts), so any
 * number can run side by side and any can be restarted. `close()` stops taking requests,
 * drains, stops the repairer and health checks, then closes shard pools.
 */
export interface RunningRouter {
  url: string
  port: number
  server: RouterServer
  cluster: Cluster
  manifests: Manifests
  catalog: Catalog
  repairer: Repairer
  edges: EdgeRegistry
  trending: Trending
  peers: TrendingPeers
  edgePeers: EdgePeers
  sessions: Sessions
  sessionPeers: SessionPeers
  steering: Steering
  close(): Promise<void>
  /** re-reads the config (opts.reload) and applies what can change live: SIGHUP and POST /admin/reload (router/reload-table.ts) */
  reload(by: 'SIGHUP' | 'admin'): Promise<ReloadResult>
}

/** the settings a router reads: a change elsewhere in a shared config file is not the router's to apply or report */
const ROUTER_SCOPE = ['log', 'http', 'cluster', 'router', 'origin.maxManifestBytes']

/** Per-ingest chunk writes in flight: one uploading while the next fills is enough to keep owners busy. */
const INGEST_PIPELINE = 2

export async function startRouter(config: Readonly<Config>,
  opts: { logger?: Logger; env?: NodeJS.ProcessEnv; reload?: () => Readonly<Config> } = {}): Promise<RunningRouter> {
  const logger = opts.logger ?? serviceLogger('router', config.log)
  const env = opts.env ?? process.env
  const rc = config.router
  const chunkSize = config.cluster.chunkSize
  const buffers = Math.floor(rc.ingestMemoryBytes / chunkSize)
  if (buffers < 1) throw new ConfigError(`expected router.ingestMemoryBytes to hold at least one chunk (${chunkSize} bytes), got ${rc.ingestMemoryBytes}`)
  const adminToken = loadSecret(rc.tokenFile, 'REELCDN_ROUTER_TOKEN', env)
  const readToken = loadSecret(rc.readTokenFile, 'REELCDN_ROUTER_READ_TOKEN', env)
  const registry = newRegistry('router', opts.logger === undefined)
  const pool = new BufferPool(chunkSize, buffers)
  let reader: ChunkReader | undefined
  const { cluster, manifests, repairer, metrics, hasShardToken, shardToken } = buildCluster(config, logger, env, registry,
    { ingestBuffers: () => ({ inUse: pool.inUse, idle: pool.idle }), relaySlabs: () => reader?.slabs.bytes() ?? { inUse: 0, idle: 0 } })
  const catalog = new Catalog(cluster, rc.catalogRefreshMs, logger)
  reader = new ChunkReader(cluster, metrics, logger, rc.verifyWholeChunks, rc.verifyBlocks,
    { memoryBytes: rc.relayMemoryBytes, waitMs: rc.upstream.headersTimeoutMs })
  const deletes = new TitleDeletes()
  const ingestor = new Ingestor(cluster, manifests, pool, metrics, logger,
    { chunkSize, need: rc.writeQuorum || config.cluster.copies, retries: rc.upstream.retries, pipeline: INGEST_PIPELINE, maxManifestBytes: config.origin.maxManifestBytes },
    m => catalog.upsert(m), deletes)
  const publisher = new Publisher(cluster, manifests, metrics, logger,
    { chunkSize, need: rc.writeQuorum || config.cluster.copies, concurrency: rc.publishConcurrency, maxManifestBytes: config.origin.maxManifestBytes },
    m => catalog.upsert(m), deletes)
  const ring = loadKeyRing(rc.tokenKeysFile, env)
  const edgeToken = loadSecret(rc.edgeTokenFile, 'REELCDN_EDGE_TOKEN', env)
  const edges = new EdgeRegistry(rc.edgeSilenceMs)
  routerEdgeMetrics(registry, () => edges.counts(Date.now()))
  if (rc.requireToken && !ring) {
    await cluster.close()
    throw new ConfigError('router.requireToken needs the token keys: set REELCDN_TOKEN_KEYS or router.tokenKeysFile')
  }
  if (rc.requireToken && readToken === undefined && adminToken === undefined) {
    await cluster.close()
    throw new ConfigError('router.requireToken needs a credential for the edges to fill with: set REELCDN_ROUTER_READ_TOKEN or router.readTokenFile')
  }
  let trending: Trending | undefined
  let sessions: Sessions
  try {
    await ensureWritableDir(rc.dataDir, 'the router\'s data dir')
    // the default id follows the configured port, so a restart finds its own counters again
    trending = new Trending(join(rc.dataDir, 'trending.sqlite'), rc.id || `router-${rc.port}`)
    sessions = new Sessions(join(rc.dataDir, 'sessions.sqlite'), rc.sessions, Date.now,
      err => logger.error({ err: err.message }, 'position reports lost: the sessions store refused them'))
  } catch (err) {
    trending?.close(Date.now())
    await cluster.close()
    throw err
  }
  const tr = trending
  let server!: RouterServer
  const sessionPeers = new SessionPeers(rc.peers, () => ring!, rc.sessions.peerTimeoutMs, logger)
  // issue 17: a title's owners at a site, by affinity, demand and bounded load (docs/steering.md)
  const steeringMetrics = routerSteeringMetrics(registry)
  const hot = new HotTitles(tr, { window: rc.steeringHotWindow, minPlays: rc.steeringHotMinPlays, loadFactor: rc.steeringLoadFactor },
    n => steeringMetrics.hotTitles.set(n))
  const steering = new Steering({ policy: rc.steering, loadFactor: rc.steeringLoadFactor, halfLifeMs: rc.steeringLoadHalfLifeMs }, hot)
  const routes = playbackRoutes({ manifests, catalog, edges, trending: tr, sessions, sessionPeers, historyLength: rc.sessions.historyLength,
    steering, hot, steeringMetrics,
    regions: new RegionMap(rc.regionNetworks), ring, edgeToken,
    originUrl: () => rc.publicUrl || server.http.url, ttlMs: rc.playTokenTtlMs, viewerTtlMs: rc.viewerTtlMs,
    maxEdgeReportBytes: rc.maxEdgeReportBytes, maxPositionReportBytes: rc.maxPositionReportBytes, bindNetwork: rc.playTokenBindNetwork, corsOrigin: rc.corsOrigin, logger, clock: Date.now })
  // the status console (docs/console.md): GET /, /status and /status.json (admin token)
  const site = new RouterConsole({ config, registry, cluster, repairer, edges, trending: tr, catalog, ingestor, id: () => rc.id || `router-${new URL(server.http.url).port}` })
  routes.push(...consoleRoutes({ logger, adminToken, where: 'REELCDN_ROUTER_TOKEN or router.tokenFile', status: () => site.status() }))
  const fillGrants = new FillGrants({ config, cluster, manifests, shardToken, metrics: routerFillGrantMetrics(registry), logger })
  let reloader: Reloader | undefined
  const reloadAt = reloadRoute(() => reloader, req => requireAdmin(req, adminToken, 'REELCDN_ROUTER_TOKEN or router.tokenFile'))
  server = new RouterServer({ config, logger, deletes, registry, cluster, manifests, catalog, reader, ingestor, publisher, repairer, adminToken, readToken, metrics,
    routes: [...routes, reloadAt], fillGrants, edges: () => edges.list(Date.now()), ring, requireToken: rc.requireToken })
  let addr
  try {
    addr = await server.http.listen(rc.port, rc.host)
  } catch (err) {
    tr.close(Date.now())
    sessions.close()
    await cluster.close()
    throw err
  }
  const peers = new TrendingPeers(tr, rc.peers, edgeToken, rc.peerExchangeMs, logger)
  const edgePeers = new EdgePeers(edges, rc.peers, edgeToken, rc.peerExchangeMs, logger)
  const snapshots = setInterval(() => tr.snapshot(Date.now()), rc.trendingSnapshotMs)
  snapshots.unref()
  peers.start()
  edgePeers.start()
  cluster.health.start()
  catalog.start()
  repairer.ranBy = `router ${rc.id || server.http.url}`
  repairer.start()
  reloader = new Reloader(config, opts.reload ?? (() => reloader!.config), routerReloadTable({ logger, cluster, edges, ring, env }), logger, ROUTER_SCOPE)
  const rl = reloader
  site.ring.start()
  server.setReady(true)
  if (adminToken === undefined) logger.warn('no admin token (REELCDN_ROUTER_TOKEN or router.tokenFile): ingest, delete and repair are refused')
  if (ring === undefined) logger.warn(`${NO_TOKEN_KEYS}: /v1/play, /v1/sessions and /v1/history answer 503`)
  if (!hasShardToken)
    logger.warn('no shard token (REELCDN_SHARD_TOKEN or router.shardTokenFile): shards refuse this router\'s writes and deletes (ingest, delete, repair) unless they run with --insecure-open-writes')
  logger.info({ url: server.http.url, shards: cluster.shards.length, copies: cluster.ring.copies, readsNeedToken: readToken !== undefined,
    readsNeedPlayToken: rc.requireToken }, 'router ready')
  let closing: Promise<void> | undefined
  return {
    url: server.http.url, port: addr.port, server, cluster, manifests, catalog, repairer, edges, trending: tr, peers, edgePeers, sessions, sessionPeers, steering,
    reload: by => rl.reload(by),
    close: () => closing ??= (async () => {
      server.setReady(false)
      site.ring.stop()
      await server.http.close()
      clearInterval(snapshots)
      await peers.stop()
      await edgePeers.stop()
      tr.close(Date.now())
      sessions.close()
      catalog.stop()
      await repairer.stop()
      await cluster.close()
    })(),
  }
}

export const routerFlags: Flag[] = [
  { flags: '--host <addr>', path: 'router.host', kind: 'string', description: 'address to listen on' },
  { flags: '-p, --port <n>', path: 'router.port', kind: 'int', description: 'TCP port (0 picks a free one)' },
  { flags: '--copies <n>', path: 'cluster.copies', kind: 'int', description: 'replicas of every chunk and manifest' },
  { flags: '--chunk-size <bytes>', path: 'cluster.chunkSize', kind: 'bytes', description: 'the cluster-wide chunk size' },
  { flags: '--ingest-memory <bytes>', path: 'router.ingestMemoryBytes', kind: 'bytes', description: 'RAM for chunks being ingested, all ingests together' },
  { flags: '--repair-rate <MBps>', path: 'router.repair.rateMBps', kind: 'number', description: 'background repair copy rate, 0 for unthrottled', unit: 'MB/s' },
  { flags: '--data-dir <dir>', path: 'router.dataDir', kind: 'string', description: 'where the router keeps its own state (trending snapshots)' },
  { flags: '--id <id>', path: 'router.id', kind: 'string', description: 'this router\'s id among peer routers (trending exchange)' },
  { flags: '--require-token', path: 'router.requireToken', kind: 'bool', description: 'content reads need a valid play token for the title, or the edges\' read (or admin) token' },
  { flags: '--repair-interval <ms>', path: 'router.repair.intervalMs', kind: 'int', description: 'time between background repair passes, 0 turns them off', unit: 'ms' },
  { flags: '--steering <policy>', path: 'router.steering', kind: 'string', description: 'how /v1/play orders a client\'s local edges: affinity (each title to its owners, bounded load) or load (less loaded first)' },
  { flags: '--steering-load-factor <c>', path: 'router.steeringLoadFactor', kind: 'number', description: 'no local edge comes first above c times its site\'s average recent load' },
  ...commonFlags,
]

export function routerCommand(): Command {
  const cmd = new Command('router')
    .summary('run a router: the origin cluster\'s front door')
    .description('Run a router: it places chunks on the shards of cluster.shards with a consistent-hash ring, ' +
      'ingests titles (PUT /v1/content/{id}), serves reads with failover between copies, lists the catalog, ' +
      'and repairs and rebalances replicas in the background. The admin token comes from REELCDN_ROUTER_TOKEN ' +
      'or router.tokenFile, the shards\' token from REELCDN_SHARD_TOKEN or router.shardTokenFile, the optional token ' +
      'content reads need (the edges\' fill credential) from REELCDN_ROUTER_READ_TOKEN or router.readTokenFile; never from a flag.')
  // `router repair -c x.json`: options after the subcommand belong to it, not to `router`
  cmd.enablePositionalOptions()
  addFlags(cmd, routerFlags)
  cmd.action(() => runUntilSignalled(() => startRouter(configFromFlags(cmd, routerFlags), { reload: () => configFromFlags(cmd, routerFlags) })))
  cmd.addCommand(repairCommand())
  return cmd
}
