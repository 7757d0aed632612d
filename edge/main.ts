import { Command } from 'commander'
import { join } from 'node:path'
import { hostname } from 'node:os'
import { addFlags, commonFlags, configFromFlags, fail, runUntilSignalled, type Flag } from '../lib/cli.js'
import type { Config } from '../lib/config/config.js'
import { serviceLogger, type Logger } from '../lib/logger.js'
import { populate, recycle, ZERO_COPY_AVAILABLE, ZERO_COPY_MISSING, zeroCopyChunk } from '../lib/net/zero-copy.js'
import { warmManifestParser } from '../lib/manifest.js'
import { edgeFillPathMetrics, edgeMetrics, edgePeerMetrics, edgePolicyMetrics, newRegistry, zeroEdgeErrorSeries } from '../lib/metrics.js'
import { loadSecret, requireAdmin } from '../lib/security/auth.js'
import { ensureWritableDir, ensureWritableSubdirs } from '../lib/storage/data-dir.js'
import { ChunkCache } from './tiers/cache.js'
import { Coalescer } from './fill/coalesce.js'
import { blockListFetch } from './fill/block-list.js'
import { counted, DirectSource } from './fill/direct-source.js'
import { GrantsCache } from './fill/grants-cache.js'
import { DiskIndex } from './tiers/disk-index.js'
import { recoverDisk } from './tiers/disk-recovery.js'
import { DiskTier } from './tiers/disk-tier.js'
import { MetaCache } from './fill/meta-cache.js'
import { createPolicy } from './policy/policy.js'
import { RamTier } from './tiers/ram-tier.js'
import { TitleReader, type ReadHooks } from './serve/reader.js'
import { FetchedAhead } from './serve/fetched-ahead.js'
import { formatReport, reportProbe, runReport } from './report.js'
import { RequestLog } from './serve/request-log.js'
import { sessionOf } from './serve/session-id.js'
import { sender, type Send } from './serve/send.js'
import { SLICES } from './serve/slices.js'
import { EdgeServer } from './serve/server.js'
import { batchApplier, ServeThreads, sharedChunk } from './serve/serve-threads.js'
import { ChunkArena } from './tiers/chunk-arena.js'
import { randomBytes } from 'node:crypto'
import { getSystemErrorName } from 'node:util'
import { Upstream } from './fill/upstream.js'
import type { ChunkFetch, CrcsFetch } from './fill/fill.js'
import { ConfigError } from '../lib/errors.js'
import { prefillMetrics } from '../lib/metrics.js'
import { loadKeyRing } from '../lib/security/tokens.js'
import { PlayAuth } from './serve/play-auth.js'
import { DemandRecorder, EdgeReporter } from './prefill/demand.js'
import { parseFillWindow } from './prefill/fill-window.js'
import { PrefillRunner } from './prefill/prefill.js'
import { demandFromRouter } from './prefill/router-demand.js'
import { EdgeConsole } from './console/status.js'
import { consoleRoutes } from '../lib/console/routes.js'
import type { ConsoleStatus } from '../lib/console/status.js'
import { SiteView } from './site/site-view.js'
import { PeerSource } from './site/peer-source.js'
import { peerRoutes } from './site/peer-serve.js'
import { reloadRoute, Reloader, type ReloadResult } from '../lib/reload.js'
import { edgeReloadTable } from './run/reload-table.js'
import { awaitGo, inheritedFd, isHandover, serveSupervised } from './run/handover.js'
import { superviseEdge } from './run/supervisor.js'
import { warmRamFromDisk } from './run/warm.js'

/** the settings an edge reads: a change elsewhere in a shared config file (router.*, origin.*) is not the edge's to apply or report */
const EDGE_SCOPE = ['log', 'http', 'cluster.chunkSize', 'edge']
/** chunk slots created at start at most, in bytes (4 GiB of address space) and in number (64 chunks of 64 MiB); an edge with a larger RAM tier creates the rest as it fills */
const MAX_RESERVED_BYTES = 4 * 1024 ** 3
const MAX_RESERVED_SLOTS = 64

/**
 * Starts an edge: check that its data dir (and chunks/, tmp/ and the title directories) takes writes, open the disk index,
 * reconcile it with the files, listen, then report ready. `close()` drains players, ends the fills still running
 * (readahead), lets queued disk writes finish, and closes SQLite, in that order.
 */
export interface RunningEdge {
  url: string
  port: number
  server: EdgeServer
  cache: ChunkCache
  fills: Coalescer
  prefill: PrefillRunner
  reporter: EdgeReporter
  demand: DemandRecorder
  /** the edge's site as the router last answered it (edge/site/site-view.ts) */
  site: SiteView
  /** `handover`: an upgrade's old worker (edge/run/supervisor.ts): no farewell heartbeat, the next worker takes over under the same id */
  close(handover?: boolean): Promise<void>
  /** re-reads the config (opts.reload) and applies what can change live: SIGHUP and POST /admin/reload (edge/run/reload-table.ts) */
  reload(by: 'SIGHUP' | 'admin'): Promise<ReloadResult>
}

export interface EdgeOptions {
  logger?: Logger
  env?: NodeJS.ProcessEnv
  /** the config again, from the same layers as at start (the CLI re-reads --config); without it a reload changes nothing */
  reload?: () => Readonly<Config>
  /** listen on this inherited socket instead of edge.host:edge.port (a supervised worker: edge/run/supervisor.ts) */
  listenFd?: number | undefined
  /** read the most recently used disk chunks into RAM once serving (an upgrade's new worker: edge/run/warm.ts) */
  warmRam?: boolean
}

export async function startEdge(config: Readonly<Config>, opts: EdgeOptions = {}): Promise<RunningEdge> {
  const logger = opts.logger ?? serviceLogger('edge', config.log)
  const cfg = config.edge
  // a queue smaller than a chunk writes one at a time and drops the rest; the upstream's own chunk size is checked again from its manifests (DiskTier.upstreamChunkSize)
  if (cfg.diskBytes > 0 && cfg.diskWriteQueueBytes < config.cluster.chunkSize)
    throw new ConfigError(`expected edge.diskWriteQueueBytes to hold at least one chunk (cluster.chunkSize = ${config.cluster.chunkSize}), got ${cfg.diskWriteQueueBytes}`)
  await ensureWritableDir(cfg.dataDir, 'the edge\'s data dir')
  // the disk tier writes into these (recovery too, before anything is served)
  for (const d of ['chunks', 'tmp']) await ensureWritableDir(join(cfg.dataDir, d), 'the edge\'s data dir')
  await ensureWritableSubdirs(join(cfg.dataDir, 'chunks'), 'the edge\'s title directory')
  const index = new DiskIndex(join(cfg.dataDir, 'index.sqlite'))
  let upstream: Upstream | undefined
  let direct: DirectSource | undefined
  let threads: ServeThreads | undefined
  let service: EdgeServer | undefined
  let peer: PeerSource | undefined
  try {
    const upstreamToken = loadSecret(cfg.upstreamTokenFile, 'REELCDN_EDGE_UPSTREAM_TOKEN', opts.env)
    const adminToken = loadSecret(cfg.adminTokenFile, 'REELCDN_EDGE_ADMIN_TOKEN', opts.env)
    const registry = newRegistry('edge', opts.logger === undefined)
    // the sketch and session budget are sized in chunks of the cluster's chunk size
    const policyOpts = { typicalBytes: config.cluster.chunkSize, sessionHorizon: cfg.sessionHorizonChunks, sessionIdleMs: cfg.sessionIdleMs }
    const ramPolicy = createPolicy(cfg.ramPolicy, cfg.ramBytes, policyOpts)
    const diskPolicy = createPolicy(cfg.diskPolicy, cfg.diskBytes, policyOpts)
    edgePolicyMetrics(registry, reportProbe(cfg.dataDir))
    let cache: ChunkCache | undefined
    let fills: Coalescer | undefined
    let send: Send | undefined
    let ahead: FetchedAhead | undefined
    let drainWaits = 0
    // with serve threads, chunks in RAM must be in memory the threads can read; without them, in the splice
    // addon's memory when it is built: RAM hits can splice its pages into sockets (lib/net/zero-copy.ts, when
    // edge.zeroCopy is on) and the disk tier can write it straight to the device (edge/tiers/chunk-file-write.ts)
    const wantsZeroCopy = cfg.zeroCopy && cfg.serveThreads === 0
    if (wantsZeroCopy && !ZERO_COPY_AVAILABLE) logger.warn({ why: ZERO_COPY_MISSING }, 'edge.zeroCopy is on but the splice addon is missing: RAM hits are copied')
    const zeroCopy = wantsZeroCopy && ZERO_COPY_AVAILABLE
    const alloc = cfg.serveThreads > 0 ? sharedChunk : ZERO_COPY_AVAILABLE ? zeroCopyChunk : undefined
    // fills write into chunk memory already faulted in, once nothing reads it any more (edge/tiers/chunk-arena.ts)
    const arena = new ChunkArena(config.cluster.chunkSize, cfg.maxFills, alloc, recycle)
    // every chunk-sized Buffer the tiers hold comes from here: fills, and the disk tier's promotions and warming,
    // so the RAM tier's memory is the memory reserved (and prefaulted) for it
    const takeChunk = (size: number) => arena.take(size)
    // the addon's chunk memory for the RAM tier's chunks, the fills and the spare, created now, untouched (mmap): a fill
    // that creates one sets off V8's collections on the event loop (chunk-arena.ts, "Reserved slots")
    if (alloc === zeroCopyChunk) {
      const slots = Math.min(MAX_RESERVED_SLOTS, Math.floor(MAX_RESERVED_BYTES / config.cluster.chunkSize),
        Math.floor(cfg.ramBytes / config.cluster.chunkSize) + cfg.maxFills + 1)
      try {
        arena.reserve(slots)
      } catch (err) {
        // the addon's mmap refused (RLIMIT_AS, vm.overcommit_memory = 2): none are kept, fills create their own as before
        if ((err as NodeJS.ErrnoException).code !== 'ERR_MEMORY_ALLOCATION_FAILED') throw err
        logger.warn({ slots, err: (err as Error).message }, 'could not create the chunk slots ahead (an address-space or overcommit limit): fills create their own')
      }
    }
    const metrics = edgeMetrics(registry, {
      tier: t => (t === 'ram' ? cache?.ram : cache?.disk)?.stats() ?? { bytes: 0, entries: 0, capacity: 0 },
      fillsInFlight: () => fills?.size ?? 0,
      fillBusySeconds: () => fills?.busySeconds() ?? 0,
      blocked: () => drainWaits + (send?.pending() ?? 0) + (threads?.blocked() ?? 0),
      diskWritesPending: () => cache?.disk.pendingWrites ?? 0,
      sweepAhead: () => ahead?.sweep(),
      chunkSlots: () => arena.stats(),
      zeroCopy: () => ({ spliced: send?.slices.splicedBytes ?? 0, probe: send?.slices.probeBytes ?? 0 }),
      diskWritten: () => cache?.disk.files.written ?? { direct: 0, page_cache: 0 },
    })
    zeroEdgeErrorSeries(metrics)
    upstream = new Upstream({ baseUrl: cfg.upstream, token: upstreamToken, connections: cfg.upstreamConnections,
      headersTimeoutMs: cfg.upstreamHeadersTimeoutMs, idleTimeoutMs: cfg.upstreamIdleTimeoutMs }, metrics)
    const ram = new RamTier(ramPolicy, n => metrics.evictions.inc({ tier: 'ram' }, n))
    const disk = new DiskTier(cfg.dataDir, diskPolicy, index, metrics, logger,
      { readSize: cfg.readSize, writeQueueBytes: cfg.diskWriteQueueBytes, accessFlushMs: cfg.accessFlushMs, openFiles: cfg.openFiles,
        policyStateFlushMs: cfg.policyStateFlushMs, alloc: takeChunk, directWrites: cfg.diskDirectWrites })
    const report = await recoverDisk(disk, logger)
    for (const [action, n] of Object.entries(report)) if (n) metrics.recovered.inc({ action }, n)
    cache = new ChunkCache(ram, disk, metrics, logger, cfg.promotions)
    const meta = new MetaCache(upstream, metrics, { ttlMs: cfg.metaTtlMs, negativeTtlMs: cfg.metaNegativeTtlMs, maxEntries: cfg.metaMaxEntries,
      chunkSize: config.cluster.chunkSize })
    meta.learned = t => {
      disk.upstreamChunkSize(t.manifest.chunkSize)
      arena.resize(t.manifest.chunkSize)
    }
    const up = upstream
    const c = cache
    // the fill path (docs/fill-path.md): chunk bytes straight from the owning shards under router grants, or by the relay
    const fillPath = edgeFillPathMetrics(registry)
    const grants = cfg.fill.path === 'direct' ? new GrantsCache({ baseUrl: cfg.upstream, token: upstreamToken,
      edgeId: cfg.id || `edge-${hostname()}`, count: Math.max(cfg.readaheadChunks + 1, cfg.fill.grantChunks), relayHoldMs: cfg.fill.relayHoldMs,
      headersTimeoutMs: cfg.upstreamHeadersTimeoutMs, connections: cfg.upstreamConnections }, fillPath, logger) : undefined
    direct = grants !== undefined ? new DirectSource(grants,
    up, { connections: cfg.upstreamConnections, headersTimeoutMs: cfg.upstreamHeadersTimeoutMs, idleTimeoutMs: cfg.upstreamIdleTimeoutMs }, fillPath, logger)
      : undefined
    const d0 = direct
    if (d0 !== undefined) {
      meta.fetching = (id, rid, index) => d0.early(id, rid, index)
      meta.withGrants = (id, rid, index) => d0.withManifest(id, rid, index)
    }
    // peer fill (docs/peer-fill.md): a chunk of a title another edge of the site owns is asked of it first
    const edgeToken = loadSecret(cfg.edgeTokenFile, 'REELCDN_EDGE_TOKEN', opts.env)
    let selfId = cfg.id
    // edge.site (contract-17): empty or absent, no site
    const siteName: string = (cfg.site as string | undefined) ?? ''
    const site = new SiteView(siteName, () => selfId, logger)
    const peerMetrics = edgePeerMetrics(registry)
    const own = { chunk: direct?.chunk ?? ((ref, from, to, signal) => counted(up.chunk(ref, from, to, signal), fillPath.bytes.relay)),
      crcs: direct?.crcs ?? ((ref, signal) => up.crcs(ref, signal)) } satisfies { chunk: ChunkFetch; crcs: CrcsFetch }
    if (siteName !== '' && edgeToken === undefined)
      logger.warn({ site: siteName }, 'edge.site is set but there is no edge credential (REELCDN_EDGE_TOKEN or edge.edgeTokenFile): no peer fill')
    peer = siteName !== '' && edgeToken !== undefined ? new PeerSource(site, own, { token: edgeToken, firstByteTimeoutMs: cfg.peer.firstByteTimeoutMs,
      holdMs: cfg.peer.holdMs, connections: cfg.upstreamConnections, idleTimeoutMs: cfg.upstreamIdleTimeoutMs }, peerMetrics, logger) : undefined
    fills = new Coalescer({
      fetch: peer?.chunk ?? own.chunk,
      crcs: blockListFetch(peer?.crcs ?? own.crcs, cfg.blockListTimeoutMs),
      cached: key => c.has(key),
      commit: (ref, buf, prefill, crcs) => {
        if (prefill) c.admitPrefill(ref, buf, crcs)
        else c.admit(ref, buf, crcs)
        ahead?.committed(ref, prefill)
      },
      stale: id => meta.invalidate(id),
      room: bytes => c.disk.room(bytes),
      metrics, logger,
    }, { maxFills: cfg.maxFills, fillTimeoutMs: cfg.fillTimeoutMs, splitBytes: cfg.fillSplitBytes, maxSegments: cfg.maxFillSegments,
      // the spare buffer kept ahead for a player's miss is a slot like any (held by the fill that takes it)
      retries: cfg.fillRetries, retryBackoffMs: cfg.fillRetryBackoffMs, alloc: takeChunk, spareBytes: config.cluster.chunkSize,
      verifyWholeChunks: cfg.fill.verifyWholeChunks })
    const f1 = fills
    // chunks readahead and prefill fetched, until a player reads them or they leave unread (the waste counter)
    ahead = new FetchedAhead(key => c.has(key) || c.disk.writing(key) || f1.has(key), metrics.hot.unread)
    // player sessions feed session-aware policies and the request log; with neither, no session is computed
    const hooks: ReadHooks = {}
    if (ramPolicy.observe || diskPolicy.observe) {
      // a session's stream and the file it reads (a title, or a rendition: its position moves with a rung switch)
      hooks.position = (session, file, index, reading) => {
        const now = Date.now()
        ramPolicy.observe?.(session, file.name, index, now, reading)
        diskPolicy.observe?.(session, file.name, index, now, reading)
      }
    }
    // the log also carries the upstream bytes, so `edge report` can give the offload next to the hit ratio
    const upstreamTotal = async () => (await metrics.upstreamBytes.get()).values[0]?.value ?? 0
    const requestLog = cfg.requestLogBytes > 0 ? new RequestLog(cfg.dataDir, cfg.requestLogBytes, cfg.requestLogFiles, logger, upstreamTotal) : undefined
    if (requestLog) hooks.read = (ref, result, bytes, session) => requestLog.record(Date.now(), ref.key, ref.size, bytes, result, session)
    const spliceRefused = (errno: number) => logger.warn({ errno: getSystemErrorName(-errno) }, 'the kernel refused a zero-copy send: RAM hits are copied from now on')
    send = sender(cfg.sendStallTimeoutMs, { stalled: () => metrics.stalls.inc(), blocked: d => { drainWaits += d } }, { ...SLICES, zeroCopy, spliceRefused })
    const reader = new TitleReader(cache, fills, metrics, send, cfg.readaheadChunks, hooks, ahead)
    const ring = loadKeyRing(cfg.tokenKeysFile, opts.env ?? process.env)
    if (cfg.requireToken && !ring) throw new ConfigError('edge.requireToken needs the token keys: set REELCDN_TOKEN_KEYS or edge.tokenKeysFile')
    // the keys verify tokens for demand even when they are not required (edge/serve/play-auth.ts `demandSession`)
    const tokens = ring ? new PlayAuth(ring) : undefined
    const auth = cfg.requireToken ? tokens : undefined
    const demand = new DemandRecorder(cfg.sessionTtlMs)
    const pc = cfg.prefill
    // what a reload changes in the prefill's demand query (edge/run/reload-table.ts)
    const live = { upstream: cfg.upstream, titles: pc.titles, demandWindow: pc.demandWindow }
    const f0 = fills
    let prefill!: PrefillRunner
    const pm = prefillMetrics(registry, {
      running: () => Number(prefill?.running ?? false), paused: () => Number(prefill?.state === 'paused'),
      windowBytes: () => prefill?.bytesThisWindow ?? 0, plannedBytes: () => prefill?.progress?.plannedBytes ?? 0,
    })
    prefill = new PrefillRunner({
      // with a site, each edge plans the titles it owns there, from a list as many times longer as the site has edges
      demand: () => demandFromRouter(live.upstream, upstreamToken, live.demandWindow, live.titles * Math.max(1, site.members.length),
        id => meta.peek(id) ?? meta.fetch(id), id => site.owns(id)),
      cache, fills: f0, metrics: pm, logger,
    }, { window: parseFillWindow(pc.window), rateMBps: pc.rateMBps, budgetBytes: pc.budgetBytes, quietMs: pc.quietMs, checkMs: pc.checkMs })
    let reporterRef: EdgeReporter | undefined
    const statusView = new EdgeConsole({ config, registry, cache, fills, prefill, demand, reporter: () => reporterRef, id: () => selfId,
      upstream: () => live.upstream, site: () => ({ name: site.site, members: site.members.length }), active: (): number => server.http.active, threads: () => threads?.alive ?? 0 })
    let reloader: Reloader | undefined
    const routes = [reloadRoute(() => reloader, req => requireAdmin(req, adminToken, 'REELCDN_EDGE_ADMIN_TOKEN or edge.adminTokenFile')),
      ...peerRoutes({ view: site, token: edgeToken, meta, cache, fills, reader, diskCrcs: key => index.crcs(key),
        serving: peer?.serving ?? new Map(), metrics: peerMetrics, logger, logs: new Map() }),
      ...consoleRoutes({ logger, adminToken, where: 'REELCDN_EDGE_ADMIN_TOKEN or edge.adminTokenFile', status: (): Promise<ConsoleStatus> => statusView.status() })]
    const server = new EdgeServer({ config, logger, registry, metrics, meta, cache, fills, reader, adminToken, auth, tokens, demand, prefill, routes,
      upstreamUrl: () => live.upstream,
      ...(hooks.position || hooks.read ? { sessionOf } : {}), get threads() { return threads } })
    service = server
    // libuv accepts one connection a turn: a turn after an accept stays short while more may wait (edge/serve/slices.ts)
    const slices = send.slices
    server.http.accepted = () => slices.accepted()
    if (adminToken === undefined) logger.warn('no admin token (REELCDN_EDGE_ADMIN_TOKEN or edge.adminTokenFile): purge, cache status and prefill control are refused')
    if (cfg.serveThreads > 0) {
      if (process.platform !== 'linux') throw new ConfigError(`edge.serveThreads needs Linux (its relay is an abstract Unix socket); this is ${process.platform}: set it to 0`)
      // a Linux abstract socket: nothing on disk, gone with the process; the secret keeps other local processes out
      const relayPath = `\0reelcdn-edge-${process.pid}-${randomBytes(6).toString('hex')}`
      const secret = randomBytes(16).toString('hex')
      await server.http.listenRelay(relayPath, secret)
      // of the environment, a thread needs only the play-token keys (edge.requireToken)
      const env = { REELCDN_TOKEN_KEYS: (opts.env ?? process.env).REELCDN_TOKEN_KEYS }
      threads = new ServeThreads(cfg.serveThreads, { relayPath, secret, config, env, sessions: !!(hooks.position || hooks.read), flushMs: 10, allow: server.http.allowed },
        { batch: batchApplier({ metrics, http: server.http, meta, reader, demand, logger }), corrupt: (key, block) => void disk.corruptElsewhere(key, block) },
        logger)
      ram.watcher = threads
      meta.watcher = threads
      disk.watch(threads.disk)
      const t = threads
      server.http.elsewhere = () => t.answering()
    }
    // before the first miss: the next fill's buffer, the manifest parser compiled, and connections to the router (best effort, a second at most)
    fills.prepare()
    warmManifestParser()
    await Promise.all([up.warm(AbortSignal.timeout(1000)), direct?.warm(AbortSignal.timeout(1000))])
    const addr = opts.listenFd !== undefined ? await server.http.listenFd(opts.listenFd) : await server.http.listen(cfg.port, cfg.host)
    selfId ||= `edge-${addr.port}`
    // the URL heartbeats name this edge by, taken now: an upgrade's old worker stops listening before its last reports
    const selfUrl = cfg.publicUrl || server.http.url
    await threads?.listen(server.http.fd)
    server.setReady(true)
    statusView.ring.start()
    const c2 = cache
    const reporter = new EdgeReporter({
      routerUrl: cfg.upstream, token: edgeToken, heartbeatMs: cfg.heartbeatMs, reportMs: cfg.demandReportMs, recorder: demand, logger,
      answered: body => {
        site.update(body)
        peerMetrics.members.set(site.members.length)
      },
      heartbeat: () => {
        const disk = c2.disk.stats()
        const ram = c2.ram.stats()
        const free = disk.capacity > 0 ? disk.capacity - disk.bytes : ram.capacity - ram.bytes
        return {
          id: cfg.id || `edge-${addr.port}`, url: selfUrl, networks: [...cfg.networks], regions: [...cfg.regions],
          healthy: true,
          // share of fill slots in use, or of connections, whichever is higher (0 idle, 1 saturated)
          load: Math.min(10, Math.max(f0.size / cfg.maxFills, server.http.active / config.http.maxConnections)),
          freeBytes: Math.max(0, free),
          // issue 17: the site, and the capacity the router weighs this edge's share of titles by (docs/steering.md)
          ...(cfg.site ? { site: cfg.site } : {}),
          capacityBytes: ram.capacity + disk.capacity,
        }
      },
    })
    reporterRef = reporter
    // demand counts a play per verified token (serve/play-auth.ts demandSession): without keys, per client address and title
    if (edgeToken !== undefined && cfg.demandReportMs > 0 && ring === undefined)
      logger.warn('no play-token keys (REELCDN_TOKEN_KEYS or edge.tokenKeysFile): play tokens are not verified, so demand counts a play per client address and title, not per viewer')
    // without the credential the router would refuse every heartbeat: say so once instead
    if (edgeToken !== undefined) reporter.start()
    else if (cfg.heartbeatMs > 0 || cfg.demandReportMs > 0)
      logger.warn('no edge credential (REELCDN_EDGE_TOKEN or edge.edgeTokenFile): not registering with the router, no demand reports')
    prefill.startTimer()
    reloader = new Reloader(config, opts.reload ?? (() => reloader!.config), edgeReloadTable({ logger, ram, disk, prefill, upstream: up, grants, reporter,
      demand: live, ring, auth: tokens, serveThreads: cfg.serveThreads, env: opts.env ?? process.env }), logger, EDGE_SCOPE)
    const rl = reloader
    // the start-up work left running behind ready (RAM warmed from disk, the RAM tier faulted in), stopped at close
    const startUp = new AbortController()
    if (opts.warmRam && cfg.ramBytes > 0 && cfg.diskBytes > 0) void warmRamFromDisk(cache, logger, startUp.signal)
    const a = ahead
    const aheadTimer = setInterval(() => a.sweep(), 1000).unref()
    logger.info({ url: server.http.url, upstream: cfg.upstream, dataDir: cfg.dataDir, ramBytes: cfg.ramBytes, diskBytes: cfg.diskBytes, recovery: report }, 'edge ready')
    // the RAM tier's chunk memory faulted in now, on a pool thread, not by the first fills that write it (chunk-arena.ts, "Prefaulted slots")
    if (cfg.ramPrefault && alloc === zeroCopyChunk && cfg.ramBytes > 0) {
      const started = performance.now()
      void arena.prefault(cfg.ramBytes, populate, startUp.signal).then(bytes => {
        // fewer bytes than the tier: the reserve's bound (MAX_RESERVED_*), slots taken meanwhile (their takers fault them in), or closing
        logger.info({ bytes, ramBytes: cfg.ramBytes, ms: Math.round(performance.now() - started), ...(startUp.signal.aborted ? { stopped: 'closing' } : {}) },
          'the RAM tier\'s chunk memory is faulted in')
      }, err => logger.warn({ err: (err as Error).message }, 'could not fault the RAM tier\'s chunk memory in: fills fault it in as they write'))
    }
    const f = fills
    let closing: Promise<void> | undefined
    return {
      url: server.http.url, port: addr.port, server, cache, fills, prefill, reporter, demand, site,
      reload: by => rl.reload(by),
      close: handover => closing ??= (async () => {
        server.setReady(false)
        clearInterval(aheadTimer)
        statusView.ring.stop()
        startUp.abort()
        // first out of steering (a farewell heartbeat, unless the next worker takes over), then drain players
        await reporter.close(!handover)
        await prefill.close()
        // the relay stays open until the threads are done: their requests in flight may still need the main thread
        await Promise.all([threads?.drain(config.http.shutdownGraceMs, handover ? config.http.keepAliveTimeoutMs : 0), server.http.close({ handover })])
        await server.http.closeRelay()
        await reporter.flush()
        f.close()
        await requestLog?.close()
        await disk.close()
        await up.close()
        await direct?.close()
        await peer?.close()
        index.close()
      })(),
    }
  } catch (err) {
    await threads?.drain(0).catch(() => {})
    await service?.http.close().catch(() => {})
    await service?.http.closeRelay().catch(() => {})
    await upstream?.close().catch(() => {})
    await direct?.close().catch(() => {})
    await peer?.close().catch(() => {})
    index.close()
    throw err
  }
}

export const edgeFlags: Flag[] = [
  { flags: '--host <addr>', path: 'edge.host', kind: 'string', description: 'address to listen on' },
  { flags: '-p, --port <n>', path: 'edge.port', kind: 'int', description: 'TCP port (0 picks a free one)' },
  { flags: '-u, --upstream <url>', path: 'edge.upstream', kind: 'string', description: 'the router\'s base URL' },
  { flags: '-d, --data-dir <dir>', path: 'edge.dataDir', kind: 'string', description: 'where the disk tier\'s chunk files and SQLite index live' },
  { flags: '--ram <bytes>', path: 'edge.ramBytes', kind: 'bytes', description: 'RAM tier size (0 turns it off)' },
  { flags: '--disk <bytes>', path: 'edge.diskBytes', kind: 'bytes', description: 'disk tier size (0 turns it off)' },
  { flags: '--readahead <chunks>', path: 'edge.readaheadChunks', kind: 'int', description: 'chunks fetched ahead of the one a player reads' },
  { flags: '--serve-threads <n>', path: 'edge.serveThreads', kind: 'int', description: 'extra threads serving RAM and disk hits on the same port (0: the main thread alone)' },
  { flags: '--max-fills <n>', path: 'edge.maxFills', kind: 'int', description: 'chunk fills in flight at once (each holds one chunk in RAM)' },
  { flags: '--fill-timeout <ms>', path: 'edge.fillTimeoutMs', kind: 'int', description: 'deadline for one chunk fill, verified', unit: 'ms' },
  { flags: '--fill-path <path>', path: 'edge.fill.path', kind: 'string', description: 'where fills read chunk bytes: direct (from the owning shards under router grants, the relay when refused) or relay (through the router)' },
  { flags: '--meta-ttl <ms>', path: 'edge.metaTtlMs', kind: 'int', description: 'how long title metadata is cached', unit: 'ms' },
  { flags: '--cors-origin <origin>', path: 'edge.corsOrigin', kind: 'string', description: 'Access-Control-Allow-Origin for players' },
  { flags: '--require-token', path: 'edge.requireToken', kind: 'bool', description: 'refuse player requests without a valid play token (keys: REELCDN_TOKEN_KEYS or edge.tokenKeysFile)' },
  { flags: '--id <id>', path: 'edge.id', kind: 'string', description: 'the id this edge registers under at the router' },
  { flags: '--public-url <url>', path: 'edge.publicUrl', kind: 'string', description: 'the URL players reach this edge at' },
  { flags: '--site <name>', path: 'edge.site', kind: 'string', description: 'the site this edge belongs to: its siblings share titles by content affinity (docs/steering.md), ask it for the titles it owns, and it prefills only those (docs/peer-fill.md)' },
  { flags: '--play-api <url>', path: 'edge.playApiUrl', kind: 'string', description: 'the router URL the watch page asks /v1/play at; empty: the --upstream URL' },
  { flags: '--fill-window <window>', path: 'edge.prefill.window', kind: 'string', description: 'deprecated: --prefill-window', hidden: true },
  { flags: '--prefill-window <window>', path: 'edge.prefill.window', kind: 'string', description: 'prefill window: HH:MM-HH:MM local time, always or never' },
  { flags: '--prefill-rate <MBps>', path: 'edge.prefill.rateMBps', kind: 'number', description: 'prefill upstream rate cap, 0 for none', unit: 'MB/s' },
  { flags: '--prefill-budget <bytes>', path: 'edge.prefill.budgetBytes', kind: 'bytes', description: 'bytes prefill may fetch per prefill window' },
  { flags: '--peer-timeout <ms>', path: 'edge.peer.firstByteTimeoutMs', kind: 'int', description: 'how long a peer fill waits for the owner\'s first byte before filling by its own path', unit: 'ms' },
  ...commonFlags,
]

export function edgeCommand(): Command {
  const cmd = new Command('edge')
    .summary('run an edge cache appliance')
    .description('Run an edge: it serves players\' byte-range reads from a RAM and a disk tier, fills misses from the ' +
      'upstream router with one fetch per chunk, and survives restarts with its disk tier intact. ' +
      'Secrets come from REELCDN_EDGE_UPSTREAM_TOKEN / edge.upstreamTokenFile and REELCDN_EDGE_ADMIN_TOKEN / ' +
      'edge.adminTokenFile, never from a flag.')
  addFlags(cmd, edgeFlags)
  cmd.option('--supervise', 'run as a supervisor that holds the port and runs the edge as a worker process: SIGUSR2 upgrades the worker ' +
    'to the release on disk without dropping players, SIGHUP reloads its config (docs/operations.md)')
  cmd.action(async () => {
    const config = configFromFlags(cmd, edgeFlags)
    if (cmd.opts<{ supervise?: boolean }>().supervise) {
      const args = process.argv.slice(process.argv.indexOf('edge') + 1).filter(a => a !== '--supervise')
      try {
        await superviseEdge(config.edge.host, config.edge.port, args, serviceLogger('edge', config.log))
      } catch (err) {
        fail(err)
      }
      return
    }
    const handover = isHandover()
    await runUntilSignalled(async () => {
      // an upgrade's new worker: everything loaded and checked; the data dir is the old worker's until `go`
      if (handover) await awaitGo()
      const edge = await startEdge(config, { reload: () => configFromFlags(cmd, edgeFlags), listenFd: inheritedFd(), warmRam: handover })
      serveSupervised(edge, serviceLogger('edge', config.log))
      return edge
    })
  })
  // flags after `report` belong to it, not to `edge` (both have --data-dir, --disk, --ram)
  cmd.enablePositionalOptions().addCommand(edgeReportCommand())
  return cmd
}

const reportFlags: Flag[] = edgeFlags.filter(f => ['edge.dataDir', 'edge.ramBytes', 'edge.diskBytes'].includes(f.path))

export function edgeReportCommand(): Command {
  const cmd = new Command('report')
    .summary('replay the edge\'s request log through MIN and each policy')
    .description('Reads the request log under the edge\'s data dir (edge.requestLogBytes), replays it through Belady\'s MIN ' +
      '(the offline optimum) and through each eviction policy at the edge\'s configured size (the disk tier\'s, or the RAM ' +
      'tier\'s without one), and prints the byte hit ratio and the origin offload the edge achieved, each policy\'s and MIN\'s, ' +
      'and each hit ratio over MIN\'s. ' +
      `The figures are written to <data-dir>/policy-report.json, which a running edge serves as reelcdn_edge_report_* gauges.`)
  addFlags(cmd, reportFlags)
  cmd.action(async () => {
    try {
      const r = await runReport(configFromFlags(cmd, reportFlags))
      process.stdout.write(`${formatReport(r)}\n`)
    } catch (err) {
      fail(err)
    }
  })
  return cmd
}
