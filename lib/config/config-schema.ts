import { z } from 'zod'
import { parseCidr } from '../security/tokens.js'
import { RENDITION_ID, RENDITION_ID_RULE } from '../media/rendition.js'

/**
 * The shape of every setting. `config/default.json` holds the values; this file
 * holds what is allowed. Units live in the names (`Ms`, `Bytes`, `MBps`).
 */
const port = z.number().int().min(0).max(65535)
const ms = z.number().int().min(0).max(24 * 3600 * 1000)
const positive = z.number().int().positive()
const bytes = z.number().int().min(0)

/** One origin shard as the router sees it. The id, not the url, is what the ring hashes: a shard can move hosts. */
const shardSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, '1-64 characters of [A-Za-z0-9._-]'),
  url: z.string().regex(/^https?:\/\/[^/?#\s]+$/, 'an http(s) origin such as http://10.0.0.5:7101, without a path'),
  /** share of the ring, relative to the other shards: set it to the shard's capacity */
  weight: z.number().positive().max(1e6),
  /** where edges read this shard's chunks under a fill grant (docs/fill-path.md), when it differs from `url` (a private network); default `url` */
  fillUrl: z.string().regex(/^https?:\/\/[^/?#\s]+$/, 'an http(s) origin such as http://10.0.0.5:7101, without a path').optional(),
}).strict()

/** A video rung of an ingest ladder: its rendition id, picture height (the short side, for a portrait source) and target bit rate */
const rungSchema = z.object({
  id: z.string().regex(RENDITION_ID, RENDITION_ID_RULE),
  /** an even number of lines; the width follows the source's display aspect ratio, rounded to even */
  height: z.number().int().min(64).max(4320).refine(n => n % 2 === 0, 'must be even (4:2:0 chroma)'),
  /** video bit rate in kbit/s (1000 bit/s); VBV maxrate 1.1x, bufsize 2x */
  kbps: z.number().int().min(50).max(100_000),
  /** H.264 profile; default high (every player that does HLS or DASH decodes it) */
  profile: z.enum(['high', 'main', 'baseline']).optional(),
}).strict()

export const configSchema = z.object({
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    /** one JSON line per request; off by default to keep the byte path bare */
    requests: z.boolean(),
    /** append the JSON lines to this file instead of stdout (reopened on SIGUSR1, for logrotate); empty: stdout, which journald takes under systemd (docs/install.md, "Logs") */
    file: z.string(),
  }).strict(),
  http: z.object({
    headersTimeoutMs: ms.min(1),
    requestTimeoutMs: ms,
    keepAliveTimeoutMs: ms,
    maxHeaderBytes: positive.min(1024).max(1024 * 1024),
    /** more header fields than this: 431 */
    maxHeaders: positive.max(10_000),
    /** a longer request target: 414 */
    maxUrlBytes: positive.min(256).max(1024 * 1024),
    maxConnections: positive,
    maxRanges: positive.max(1000),
    shutdownGraceMs: ms,
    /** PEM files; both set: serve HTTPS */
    tlsCertFile: z.string(),
    tlsKeyFile: z.string(),
  }).strict().refine(h => !h.tlsCertFile === !h.tlsKeyFile, 'tlsCertFile and tlsKeyFile go together: set both or neither'),
  cluster: z.object({
    chunkSize: positive.min(65536).max(1024 ** 3).refine(n => n % 65536 === 0, 'must be a multiple of 65536'),
    /** replicas of every chunk and manifest: the ring's `owners` list has this many distinct shards */
    copies: positive.max(16),
    /** ring points of a shard of average weight; a shard gets about vnodes × weight / mean weight (4 per hash, as ketama) */
    vnodes: positive.max(100000).refine(n => n % 4 === 0, 'must be a multiple of 4'),
    /** every shard on the ring, down ones included: a shard leaves the ring only when removed here */
    shards: z.array(shardSchema).min(1).max(1000)
      .refine(a => new Set(a.map(s => s.id)).size === a.length, 'shard ids must be unique')
      .refine(a => new Set(a.map(s => s.url)).size === a.length, 'shard urls must be unique'),
  }).strict(),
  origin: z.object({
    /** this shard's id in cluster.shards: it accepts only fill grants signed for it (docs/fill-path.md); empty: it accepts none. `reelcdn cluster` sets it */
    id: z.string().regex(/^([A-Za-z0-9][A-Za-z0-9._-]{0,63})?$/, '1-64 characters of [A-Za-z0-9._-]'),
    host: z.string().min(1),
    port,
    dataDir: z.string().min(1),
    reserveBytes: bytes,
    maxManifestBytes: positive.max(64 * 1024 ** 2),
    memoryCacheBytes: bytes,
    readSize: positive.min(65536).max(16 * 1024 ** 2).refine(n => n % 65536 === 0, 'must be a multiple of 65536'),
    scrubRateMBps: z.number().min(0),
    scrubIdleMs: ms,
    /** the shard token's file (or REELCDN_SHARD_TOKEN): with it, every /v1 route needs it; without it, writes and deletes are refused */
    tokenFile: z.string(),
    /** without a shard token, take writes and deletes from anyone: for tests on loopback only */
    insecureOpenWrites: z.boolean(),
  }).strict(),
  edge: z.object({
    host: z.string().min(1),
    port,
    /** the router's base URL; chunk and meta paths are appended to it */
    upstream: z.string().refine(isHttpUrl, 'an http:// or https:// URL'),
    upstreamTokenFile: z.string(),
    adminTokenFile: z.string(),
    dataDir: z.string().min(1),
    /** RAM tier; 0 turns it off */
    ramBytes: bytes,
    /** the RAM tier's chunk memory faulted in behind the edge's start, so the first fills write into memory that is resident (edge/tiers/chunk-arena.ts, "Prefaulted slots"); false: faulted in by the fills that write it */
    ramPrefault: z.boolean(),
    /** disk tier; 0 turns it off */
    diskBytes: bytes,
    /** eviction/admission policy per tier: lru, s3fifo, wtinylfu, session (S3-FIFO + live-session retention), predictive (title popularity × position survival + live sessions) */
    ramPolicy: z.enum(['lru', 's3fifo', 'wtinylfu', 'session', 'predictive']),
    diskPolicy: z.enum(['lru', 's3fifo', 'wtinylfu', 'session', 'predictive']),
    /** session policy: chunks ahead of a player's position that stay protected */
    sessionHorizonChunks: z.number().int().min(1).max(256),
    /** session policy: a player silent this long stops protecting anything */
    sessionIdleMs: ms.min(1),
    /** how often the disk tier's policy state (queues, frequency sketch) is saved to the index; also saved at close */
    policyStateFlushMs: ms.min(1),
    /** request log for `reelcdn edge report`: bytes per file before rotation (0 turns it off) */
    requestLogBytes: bytes,
    /** rotated request log files kept besides the current one */
    requestLogFiles: z.number().int().min(0).max(100),
    metaTtlMs: ms,
    metaNegativeTtlMs: ms,
    metaMaxEntries: positive,
    /** chunks fetched ahead of the one a player reads; 0 turns readahead off */
    readaheadChunks: z.number().int().min(0).max(16),
    /** threads that serve RAM and disk hits next to the main thread, on the same port (edge/serve/serve-threads.ts); 0: the main thread alone */
    serveThreads: z.number().int().min(0).max(64),
    /** RAM hits spliced into plain TCP sockets without a copy (lib/net/zero-copy.ts; needs the splice addon, and serveThreads 0) */
    zeroCopy: z.boolean(),
    /** chunk fills in flight at once, each holding one chunk in RAM until it is cached */
    maxFills: positive.max(1024),
    fillTimeoutMs: ms.min(1),
    /** a reader further than this ahead of a fill's progress gets its own ranged upstream fetch */
    fillSplitBytes: positive,
    maxFillSegments: positive.max(64),
    /** failures in a row (a cut, a 502/503/504 or a timeout, each asked again from the last verified byte) after which a fill fails; a request that brought a 64 KiB block more starts the count again; 0: the first failure fails the fill */
    fillRetries: z.number().int().min(0).max(10),
    /** the wait before a fill's first resumed request, doubled for each next failure in a row */
    fillRetryBackoffMs: ms,
    /** a fill's request for its chunk's block list, body included (asked twice, then the fill verifies the whole chunk); short: the fill releases no byte until the list comes */
    blockListTimeoutMs: ms.min(1),
    upstreamConnections: positive.max(4096),
    upstreamHeadersTimeoutMs: ms.min(1),
    upstreamIdleTimeoutMs: ms.min(1),
    readSize: positive.min(65536).max(16 * 1024 ** 2).refine(n => n % 65536 === 0, 'must be a multiple of 65536'),
    /** bytes of verified chunks waiting for the disk (512 MiB: every fill slot's chunk at the default 8 × 64 MiB); past it a chunk is not written (kept in RAM only), and readahead and prefill wait for room */
    diskWriteQueueBytes: bytes.min(1),
    /** chunks written from their memory straight to the device (O_DIRECT) where memory, length and file system allow (edge/tiers/chunk-file-write.ts); false: through the page cache */
    diskDirectWrites: z.boolean(),
    /** chunk files kept open between reads (each holds a file descriptor and the chunk's block CRCs) */
    openFiles: z.number().int().min(0).max(65536),
    /** disk-to-RAM promotions in flight at once */
    promotions: z.number().int().min(0).max(64),
    accessFlushMs: ms.min(1),
    /** a response that cannot send for this long is cut, so a stalled player cannot pin memory forever */
    sendStallTimeoutMs: ms.min(1),
    /** Access-Control-Allow-Origin for player routes: '*' or one origin */
    corsOrigin: z.string().min(1),
    fill: z.object({
      /** where fills read chunk bytes: direct from the owning shards under a router-signed grant, or relay through the router (docs/fill-path.md) */
      path: z.enum(['direct', 'relay']),
      /** after the router refuses grants (disabled, an older router), fills use the relay for this long before asking again (30 s) */
      relayHoldMs: ms,
      /** chunks one grant lookup asks for (at least the readahead's; the router answers at most router.fillGrants.maxChunks): a seek within them finds its grant in hand */
      grantChunks: z.number().int().min(1).max(999),
      /** also take the SHA-256 of a whole filled chunk whose every block passed the manifest's block list (off: the list is the check; edge/fill/fill.ts) */
      verifyWholeChunks: z.boolean(),
    }).strict(),
    // issue 5: steering, tokens, demand reports and prefill
    /** the id this edge registers under at the router; empty: edge-<port> */
    id: z.string().regex(/^([A-Za-z0-9._-]{1,64})?$/, '1-64 characters of [A-Za-z0-9._-]'),
    /** the URL players reach this edge at; empty: the address it listens on */
    publicUrl: z.string().refine(s => s === '' || isHttpUrl(s), 'an http:// or https:// URL'),
    /** where the watch page (/watch/{id}) asks /v1/play: the router's URL as viewers' browsers reach it; empty: edge.upstream */
    playApiUrl: z.string().refine(s => s === '' || isHttpUrl(s), 'an http:// or https:// URL'),
    /** client networks this edge serves (CIDRs), sent in heartbeats: the router steers them here first */
    networks: z.array(z.string().refine(isCidr, 'a CIDR such as 192.0.2.0/24')).max(1000),
    /** ISO 3166-1 alpha-2 regions this edge serves */
    regions: z.array(z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166-1 alpha-2 code')).max(300),
    /** the edge credential for heartbeats and demand reports; REELCDN_EDGE_TOKEN wins */
    edgeTokenFile: z.string(),
    /** 0 turns heartbeats off */
    heartbeatMs: ms,
    /** the site this edge belongs to (issue 17: its siblings share one cache by content affinity); empty: none */
    site: z.string().regex(/^([a-z0-9._-]{1,64})?$/, '1-64 characters of [a-z0-9._-]'),
    /** 0 turns demand reports off */
    demandReportMs: ms,
    /** every player request needs a valid play token (query `token` or Authorization: Bearer) */
    requireToken: z.boolean(),
    /** token keys `kid:secret,...`; REELCDN_TOKEN_KEYS wins */
    tokenKeysFile: z.string(),
    /** a play (a session) is counted once per token, or per client and title, within this time */
    sessionTtlMs: ms.min(1),
    prefill: z.object({
      /** `HH:MM-HH:MM` local time, `always` or `never` */
      window: z.string().refine(isFillWindow, 'HH:MM-HH:MM, always or never'),
      /** upstream rate prefill may use, decimal MB/s; 0: unthrottled */
      rateMBps: z.number().min(0),
      /** bytes prefill may fetch per window */
      budgetBytes: bytes,
      /** prefill waits this long after the last player miss */
      quietMs: ms,
      /** titles asked from the router's trending list */
      titles: positive.max(10_000),
      demandWindow: z.enum(['5m', '1h', '24h']),
      /** how often the edge checks whether to start a pass inside the window */
      checkMs: ms.min(100),
    }).strict(),
    // issue 17: a site of edges as one cache (docs/peer-fill.md); edge.site is above
    peer: z.object({
      /** a peer fill waits this long for the owner's first byte before the edge fills by its own path (250 ms) */
      firstByteTimeoutMs: ms.min(1).max(60_000),
      /** after an owner timed out, refused or failed, this edge fills by its own path for this long before asking it again (5 s) */
      holdMs: ms,
    }).strict(),
  }).strict(),
  router: z.object({
    host: z.string().min(1),
    port,
    /** the admin bearer token (ingest, delete, repair); REELCDN_ROUTER_TOKEN wins. None: admin routes refuse */
    tokenFile: z.string(),
    /** the token the shards expect; REELCDN_SHARD_TOKEN wins */
    shardTokenFile: z.string(),
    /** the token content reads need (what edges send as REELCDN_EDGE_UPSTREAM_TOKEN); REELCDN_ROUTER_READ_TOKEN wins. None: reads are public */
    readTokenFile: z.string(),
    /** RAM for chunks being ingested, shared by all ingests: at least one chunk */
    ingestMemoryBytes: positive,
    /** RAM the relay reads shard bytes into, shared by all reads (router/read/shard-windows.ts); past it, reads wait their turn */
    relayMemoryBytes: positive,
    /** largest JSON body of an edge's heartbeat or demand report (4 MiB by default); past it, 413 */
    maxEdgeReportBytes: positive.min(1024).max(64 * 1024 ** 2),
    /** largest JSON body of a player's position report, PUT /v1/sessions/{id} (64 KiB by default); past it, 413 */
    maxPositionReportBytes: positive.min(256).max(1024 ** 2),
    /** owners that must store a chunk for an ingest to go on; 0 means all `copies` */
    writeQuorum: z.number().int().min(0).max(16),
    manifestTtlMs: ms,
    catalogRefreshMs: ms.min(100),
    /** also hash whole chunks whose every block is checked against the manifest's block list, and cut the response on a mismatch (chunks without a block list are always hashed) */
    verifyWholeChunks: z.boolean(),
    /** check every 64 KiB block of a read against the manifest's block lists and fail over to the next owner on a mismatch */
    verifyBlocks: z.boolean(),
    /** an adaptive title's publish: chunks checked on their owners at once (each on all its owners: a HEAD per copy, then one block list) */
    publishConcurrency: positive.max(256),
    /** Access-Control-Allow-Origin of player reads (titles, playlists, renditions): '*' or one origin */
    corsOrigin: z.string().min(1),
    /** copies a shard refused (corrupt, missing): asked last for ttlMs (5 min), or until this router stores them again; at most max (10,000) remembered */
    refusedCopies: z.object({
      ttlMs: ms.min(1),
      max: positive.max(10_000_000),
    }).strict(),
    /** direct fills (docs/fill-path.md): grants edges read chunks from their owners with */
    fillGrants: z.object({
      /** issue grants; they also need a shard token (the key is derived from it): without one the route answers 503 and edges use the relay */
      enabled: z.boolean(),
      /** a grant's lifetime (60 s) */
      ttlMs: ms.min(1000),
      /** chunks one answer covers at most (a fill's chunk and its readahead) */
      maxChunks: positive.max(64),
      /** chunk grants per second per edge (0: no cap); past it, 429 with Retry-After and the edge uses the relay */
      perEdgeRatePerS: z.number().min(0),
      /** chunk grants an edge may take at once above the rate */
      perEdgeBurst: positive.max(100_000),
    }).strict(),
    upstream: z.object({
      connections: positive.max(10000),
      connectTimeoutMs: ms.min(1),
      headersTimeoutMs: ms.min(1),
      /** longest silence inside a response body */
      bodyTimeoutMs: ms.min(1),
      /** a chunk PUT: from the end of the body to the shard's answer (it fsyncs first) */
      putTimeoutMs: ms.min(1),
      /** extra attempts on one shard for a failed write */
      retries: z.number().int().min(0).max(10),
    }).strict(),
    health: z.object({
      intervalMs: ms.min(10),
      timeoutMs: ms.min(1),
      /** consecutive failed checks that mark a shard down */
      fall: positive.max(100),
      /** consecutive good checks that mark it up again */
      rise: positive.max(100),
    }).strict(),
    repair: z.object({
      /** time between background passes; 0 turns the background repairer off */
      intervalMs: ms,
      /** copy rate of the repairer, 0 for unthrottled */
      rateMBps: z.number().min(0),
      concurrency: positive.max(64),
      /** chunks no manifest refers to are deleted once this old: keep it well above the longest ingest, whose chunks have no manifest until its end */
      orphanGraceMs: z.number().int().min(0),
    }).strict(),
    // issue 5: trending, steering, play tokens, sessions
    /** this router's id in trending state exchanged with peers; empty: router-<port> */
    id: z.string().regex(/^([A-Za-z0-9._-]{1,64})?$/, '1-64 characters of [A-Za-z0-9._-]'),
    /** the URL players reach this router at (the origin cluster's play URL); empty: the address it listens on */
    publicUrl: z.string().refine(s => s === '' || isHttpUrl(s), 'an http:// or https:// URL'),
    /** where the router keeps its own state (trending snapshots) */
    dataDir: z.string().min(1),
    /** the credential edges send with heartbeats and demand reports; REELCDN_EDGE_TOKEN wins. None: refused */
    edgeTokenFile: z.string(),
    /** play token keys `kid:secret,...` (first signs, all verify); REELCDN_TOKEN_KEYS wins. None: /v1/play refuses */
    tokenKeysFile: z.string(),
    /** content reads (/v1/content/{id}, /meta, /chunks) need a valid play token for the title, or the edges' credential (read or admin token) */
    requireToken: z.boolean(),
    playTokenTtlMs: ms.min(1000),
    /** lifetime of the viewer credentials /v1/play hands out (renewed on each play that presents one) */
    viewerTtlMs: z.number().int().min(1000).max(10 * 365 * 86_400_000),
    /** bind play tokens to the client's /24 (IPv4) or /64 (IPv6) */
    playTokenBindNetwork: z.boolean(),
    /** an edge silent this long leaves steering */
    edgeSilenceMs: ms.min(1),
    trendingSnapshotMs: ms.min(100),
    /** other routers' base URLs: their trending state is merged (by replacement) into this one's */
    peers: z.array(z.string().refine(isHttpUrl, 'an http:// or https:// URL')).max(100),
    peerExchangeMs: ms.min(100),
    /** client networks to regions, for licensing when a play request names no region */
    regionNetworks: z.array(z.object({ cidr: z.string().refine(isCidr, 'a CIDR'), region: z.string().regex(/^[A-Z]{2}$/) }).strict()).max(100_000),
    sessions: z.object({
      /** viewers whose positions are kept (least recently active dropped first) */
      maxViewers: positive,
      /** titles per viewer's history */
      historyLength: positive.max(1000),
      /** a viewer's data expires this long after their last report */
      ttlMs: z.number().int().min(1000).max(366 * 24 * 3600 * 1000),
      /** a resume or history lookup waits this long for each peer router's answer */
      peerTimeoutMs: ms.min(1),
    }).strict(),
    // issue 17: steering with content affinity (docs/steering.md)
    /** how /v1/play orders a client's local edges: affinity (each title to its owners by weighted rendezvous hashing, bounded load) or load (less loaded first, as before issue 17) */
    steering: z.enum(['affinity', 'load']),
    /** c: no local edge is offered first above c × its site's average recent load (plays this router steered); 1.25 */
    steeringLoadFactor: z.number().min(1).max(100),
    /** half-life of the recent load the bound counts (plays steered to each edge, decayed): 5 min */
    steeringLoadHalfLifeMs: ms.min(1000),
    /** a title needs at least this many plays in steeringHotWindow before demand gives it more than one owner */
    steeringHotMinPlays: positive.max(1e9),
    /** the trending window a title's share of demand is taken over */
    steeringHotWindow: z.enum(['5m', '1h', '24h']),
  }).strict(),
  /** `reelcdn ingest --renditions <ladder>`: transcoding where the CLI runs (docs/abr.md, "Ingest") */
  ingest: z.object({
    /** named ladders of video rungs, highest first; rungs above the source's height are left out (router/ingest/transcode/ladder.ts) */
    ladders: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, '1-32 characters of [A-Za-z0-9_-]'), z.array(rungSchema).min(1).max(16)
      .refine(a => new Set(a.map(r => r.id)).size === a.length, 'rung ids must be unique within a ladder')
      .refine(a => new Set(a.map(r => r.height)).size === a.length, 'rung heights must be unique within a ladder')),
    /** segment (and closed GOP) length in whole seconds: keyframes forced every segmentSeconds in every rung; DASH-IF advises 2-4 s, Apple 6 s */
    segmentSeconds: z.number().int().min(1).max(10),
    /** a faster source is encoded at its rate divided by the smallest integer that brings it to this or below (120 → 60, 100 → 50) */
    maxFrameRate: z.number().int().min(10).max(240),
    /** libx264 -preset: slower is smaller at the same quality and costs more CPU */
    preset: z.enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow']),
    /** AAC-LC stereo 48 kHz, one rendition `a<kbps>` shared by every rung; a source without sound gets none */
    audioKbps: z.number().int().min(32).max(512),
    /** split: one ffmpeg decodes once into every rung; parallel: one ffmpeg per rung at once; sequential: one after another (docs/benchmarks.md) */
    strategy: z.enum(['split', 'parallel', 'sequential']),
    /** transcodes in progress and finished renditions waiting for upload, one directory per source, ladder and settings (kept on failure for a resume) */
    workDir: z.string().min(1),
    /** the ffmpeg binary (ffprobe is taken from the same directory); empty: /usr/bin/ffmpeg, installed with apt-get when missing */
    ffmpeg: z.string(),
  }).strict(),
  local: z.object({
    /** `reelcdn cluster`: where each member keeps its data (<dataDir>/<shard id>) */
    dataDir: z.string().min(1),
  }).strict(),
}).strict()

function isCidr(s: string): boolean {
  try { parseCidr(s); return true } catch { return false }
}

/** the form edge/prefill/fill-window.ts parses (it also refuses an empty window such as 02:00-02:00) */
function isFillWindow(s: string): boolean {
  const m = /^(?:always|never|(([01]\d|2[0-3]):[0-5]\d)-(([01]\d|2[0-3]):[0-5]\d))$/.exec(s)
  return m !== null && (m[1] === undefined || m[1] !== m[3])
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s)
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.search && !u.hash
  } catch {
    return false
  }
}

export type Config = z.infer<typeof configSchema>
