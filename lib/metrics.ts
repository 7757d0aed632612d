import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * Every metric is declared here. Each service instance has its own Registry, so
 * tests can run several servers in one process. Labels stay low-cardinality:
 * routes, results and status classes, never a title or chunk id.
 */
export function newRegistry(service: string, processMetrics = true): Registry {
  const registry = new Registry()
  registry.setDefaultLabels({ service })
  if (processMetrics) collectDefaultMetrics({ register: registry })
  return registry
}

/**
 * A count taken on a hot path as a plain add, folded into its prom-client
 * Counter when the counter is scraped (its `collect` hook): prom-client's own
 * `inc` hashes and validates the labels on every call.
 */
export interface Tally { n: number }

/** One tally per label value known up front. */
export function tallies<V extends string>(values: readonly V[]): Record<V, Tally> {
  const t = {} as Record<V, Tally>
  for (const v of values) t[v] = { n: 0 }
  return t
}

function fold<L extends string>(counter: Counter<L>, label: L, t: Record<string, Tally>): void {
  for (const v in t) {
    const x = t[v]!
    if (x.n === 0) continue
    counter.inc({ [label]: v } as Partial<Record<L, string>>, x.n)
    x.n = 0
  }
}

/**
 * Adds to `counter` what each total named in `seen` grew by since the last scrape (totals kept elsewhere), and
 * remembers them; each under `label` = its name, or (no label) a counter without labels and one total.
 */
function incSince<L extends string, K extends string>(counter: Counter<L>, label: L | undefined, now: Record<K, number>, seen: Record<K, number>): void {
  for (const k in seen) {
    const d = now[k] - seen[k]
    if (d > 0) {
      if (label === undefined) counter.inc(d)
      else counter.inc({ [label]: k } as unknown as Partial<Record<L, string>>, d)
    }
    seen[k] = now[k]
  }
}

/** Tallies keyed by a string built from several labels, created on first use. */
export class KeyedTallies<L extends string> {
  private readonly map = new Map<string, { labels: Partial<Record<L, string>>; n: number }>()

  get(key: string, labels: () => Partial<Record<L, string>>): Tally {
    let x = this.map.get(key)
    if (x === undefined) {
      x = { labels: labels(), n: 0 }
      this.map.set(key, x)
    }
    return x
  }

  fold(counter: Counter<L>): void {
    for (const x of this.map.values()) {
      if (x.n === 0) continue
      counter.inc(x.labels, x.n)
      x.n = 0
    }
  }
}

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export function httpMetrics(registry: Registry, inflight: () => number) {
  const answered = new KeyedTallies<'route' | 'method' | 'status'>()
  return {
    /** count a request here (key: route, method and status class), not with `requests.inc` */
    answered,
    requests: new Counter({ name: 'reelcdn_http_requests_total', help: 'HTTP requests answered, by route, method and status class',
      labelNames: ['route', 'method', 'status'] as const, registers: [registry], collect() { answered.fold(this) } }),
    duration: new Histogram({ name: 'reelcdn_http_request_duration_seconds', help: 'Time from request to the last byte written, by route',
      labelNames: ['route'] as const, buckets: latencyBuckets, registers: [registry] }),
    inflight: new Gauge({ name: 'reelcdn_http_requests_in_flight', help: 'Requests being answered now', registers: [registry],
      collect() { this.set(inflight()) } }),
    aborted: new Counter({ name: 'reelcdn_http_responses_aborted_total', help: 'Responses cut short: the client left or the body failed after the headers',
      labelNames: ['route'] as const, registers: [registry] }),
    clientErrors: new Counter({ name: 'reelcdn_http_client_errors_total',
      help: 'Requests refused or cut for a cause on the client\'s side (malformed, unsupported, over a limit, unauthorized, gone), by reason: the error code without CDN_ERR_',
      labelNames: ['reason'] as const, registers: [registry] }),
  }
}
export type HttpMetrics = ReturnType<typeof httpMetrics>

/** What the origin's gauges read when scraped. */
export interface OriginProbes {
  cachedBytes(): number
  stats(): { ok: number; corrupt: number; bytes: number }
  disk(): Promise<{ capacity: number; free: number }>
}

export function originMetrics(registry: Registry, probes: OriginProbes) {
  return {
    chunkReads: new Counter({ name: 'reelcdn_origin_chunk_reads_total', help: 'Chunk reads by result (memory = verified blocks in RAM, disk, corrupt = refused)',
      labelNames: ['result'] as const, registers: [registry] }),
    bytesServed: new Counter({ name: 'reelcdn_origin_bytes_served_total', help: 'Chunk body bytes sent', registers: [registry] }),
    bytesStored: new Counter({ name: 'reelcdn_origin_bytes_stored_total', help: 'Chunk bytes accepted by PUT', registers: [registry] }),
    puts: new Counter({ name: 'reelcdn_origin_chunk_puts_total', help: 'Chunk PUTs by result',
      labelNames: ['result'] as const, registers: [registry] }),
    corruptBlocks: new Counter({ name: 'reelcdn_origin_corrupt_blocks_total', help: 'Checksum blocks that failed verification, on reads or scrubs',
      labelNames: ['found_by'] as const, registers: [registry] }),
    chunks: new Gauge({ name: 'reelcdn_origin_chunks', help: 'Chunks in the index by state',
      labelNames: ['state'] as const, registers: [registry],
      collect() { const s = probes.stats(); this.set({ state: 'ok' }, s.ok); this.set({ state: 'corrupt' }, s.corrupt) } }),
    storedBytes: new Gauge({ name: 'reelcdn_origin_stored_bytes', help: 'Bytes of chunk data held', registers: [registry],
      collect() { this.set(probes.stats().bytes) } }),
    disk: new Gauge({ name: 'reelcdn_origin_disk_bytes', help: 'The data directory\'s filesystem: capacity and bytes free to the shard',
      labelNames: ['kind'] as const, registers: [registry],
      async collect() { const d = await probes.disk(); this.set({ kind: 'capacity' }, d.capacity); this.set({ kind: 'free' }, d.free) } }),
    memoryBytes: new Gauge({ name: 'reelcdn_origin_memory_cache_bytes', help: 'Verified chunk bytes held in RAM', registers: [registry],
      collect() { this.set(probes.cachedBytes()) } }),
    scrubbedBytes: new Counter({ name: 'reelcdn_origin_scrubbed_bytes_total', help: 'Bytes re-verified by the scrubber', registers: [registry] }),
    scrubPasses: new Counter({ name: 'reelcdn_origin_scrub_passes_total', help: 'Complete scrubber passes over every chunk', registers: [registry] }),
    recovered: new Counter({ name: 'reelcdn_origin_recovery_actions_total', help: 'Start-up reconciliation actions',
      labelNames: ['action'] as const, registers: [registry] }),
  }
}
export type OriginMetrics = ReturnType<typeof originMetrics>

export interface TierStats {
  bytes: number
  entries: number
  capacity: number
}

/** What the edge's gauges read when scraped. */
export interface EdgeProbes {
  tier(name: 'ram' | 'disk'): TierStats
  fillsInFlight(): number
  /** seconds since start with at least one fill in flight, the current stretch included (edge/fill/coalesce.ts busySeconds) */
  fillBusySeconds?(): number
  /** player responses waiting for their player to read (edge/serve/send.ts) */
  blocked?(): number
  /** verified chunks queued for the disk tier or being written */
  diskWritesPending?(): number
  /** brings reelcdn_edge_unread_ahead_bytes_total up to date before a scrape (edge/serve/fetched-ahead.ts) */
  sweepAhead?(): void
  /** the chunk arena's idle bytes and slots handed out (edge/tiers/chunk-arena.ts) */
  chunkSlots?(): { idleBytes: number; allocated: number; reserved: number; reused: number; prefaulted: number; prefaultPending: number }
  /** bytes of RAM hits spliced into sockets, and copied as their probes (edge/serve/slices.ts) */
  zeroCopy?(): { spliced: number; probe: number }
  /** bytes of chunks the disk tier wrote straight to the device and through the page cache (edge/tiers/chunk-file-write.ts) */
  diskWritten?(): { direct: number; page_cache: number }
}

const fillBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

/**
 * The edge's metrics. Results are per chunk read: a player request that spans
 * two chunks counts twice. Two figures, always shown together (README, "Hit
 * ratio and origin offload", has the PromQL): the byte hit ratio,
 * (ram_hit + disk_hit) / all of reelcdn_edge_bytes_served_total, where a byte
 * read from a fill in flight (`coalesced`, whoever started it) is no hit; and
 * the origin offload, 1 - reelcdn_edge_upstream_bytes_total / all bytes served,
 * which shared fills raise and unread readahead and prefill lower.
 */
export const READ_RESULTS = ['ram_hit', 'disk_hit', 'miss', 'coalesced'] as const
export const HIT_RESULTS = ['ram_hit', 'disk_hit'] as const
export const RESPONSE_KINDS = ['full', 'range', 'multirange', 'head', 'not_modified'] as const
export const READAHEAD_RESULTS = ['started', 'cached', 'skipped'] as const
/** who fetched a chunk before any player asked for it */
export const AHEAD_KINDS = ['readahead', 'prefill'] as const
/**
 * the kind of file bytes were read from (issue 15): a single-file title's own, or a rendition's type. Not the
 * rendition id: ids are chosen per title at ingest (a ladder's names, a pre-encoded package's), so across a
 * catalog their set is open; per-rung figures live in the demand reports and the request log, which count by rendition
 */
export const FILE_KINDS = ['title', 'video', 'audio'] as const
export type FileKind = (typeof FILE_KINDS)[number]
export const PLAYLIST_KINDS = ['master', 'media', 'mpd'] as const

function fileTallies(): Record<FileKind, Record<(typeof READ_RESULTS)[number], Tally>> {
  const t = {} as Record<FileKind, Record<(typeof READ_RESULTS)[number], Tally>>
  for (const f of FILE_KINDS) t[f] = tallies(READ_RESULTS)
  return t
}
/** label objects built once: folding allocates none */
const FILE_LABELS = Object.fromEntries(FILE_KINDS.map(f => [f, Object.fromEntries(READ_RESULTS.map(r => [r, { file: f, result: r }]))])) as
  Record<FileKind, Record<(typeof READ_RESULTS)[number], { file: FileKind; result: (typeof READ_RESULTS)[number] }>>

export function edgeMetrics(registry: Registry, probes: EdgeProbes) {
  const tiers = ['ram', 'disk'] as const
  // the player read path counts into these (plain adds), folded into the counters below when scraped
  const hot = {
    reads: tallies(READ_RESULTS), bytes: tallies(READ_RESULTS), responses: tallies(RESPONSE_KINDS), readahead: tallies(READAHEAD_RESULTS),
    meta: tallies(['hit'] as const), unread: tallies(AHEAD_KINDS), playlists: tallies(PLAYLIST_KINDS),
    /** bytes by kind of file, then by where they came from (the byte hit ratio per kind) */
    files: fileTallies(),
    /** bytes of misses and coalesced reads whose chunk a sibling at the site held (peer fill) */
    sibling: { n: 0 },
  }
  const slotsSeen = { reused: 0, reserved: 0, allocated: 0 }
  const zeroCopySeen = { spliced: 0, probe: 0 }
  const writtenSeen = { direct: 0, page_cache: 0 }
  const busySeen = { busy: 0 }
  return {
    hot,
    reads: new Counter({ name: 'reelcdn_edge_requests_total', help: 'Chunk reads by players, by result: ram_hit, disk_hit, miss (started the upstream fill), coalesced (joined a fill in flight)',
      labelNames: ['result'] as const, registers: [registry], collect() { fold(this, 'result', hot.reads) } }),
    bytes: new Counter({ name: 'reelcdn_edge_bytes_served_total', help: 'Body bytes sent to players, by where they came from (same results as reelcdn_edge_requests_total); byte hit ratio: (ram_hit + disk_hit) / all, origin offload: 1 - reelcdn_edge_upstream_bytes_total / all',
      labelNames: ['result'] as const, registers: [registry], collect() { fold(this, 'result', hot.bytes) } }),
    siblingBytes: new Counter({ name: 'reelcdn_edge_sibling_bytes_served_total', help: 'Of the bytes reelcdn_edge_bytes_served_total counts as miss or coalesced, those whose chunk came from a sibling at the site that held it (peer fill, docs/peer-fill.md): hits of the site. A site\'s byte hit ratio: the sum over its edges of (ram_hit + disk_hit + these) over all bytes served',
      registers: [registry], collect() { this.inc(hot.sibling.n); hot.sibling.n = 0 } }),
    fileBytes: new Counter({ name: 'reelcdn_edge_file_bytes_served_total', help: 'Body bytes sent to players (as reelcdn_edge_bytes_served_total), by the kind of file: title (a single-file title), video or audio (an adaptive title\'s renditions), and where they came from (ram_hit, disk_hit, miss, coalesced); byte hit ratio of a kind: (ram_hit + disk_hit) / all of that file',
      labelNames: ['file', 'result'] as const, registers: [registry], collect() {
        for (const f of FILE_KINDS) for (const r of READ_RESULTS) {
          const x = hot.files[f][r]
          if (x.n > 0) this.inc(FILE_LABELS[f][r], x.n)
          x.n = 0
        }
      } }),
    playlists: new Counter({ name: 'reelcdn_edge_playlists_total', help: 'Playlists answered to players (adaptive titles), by kind: master (HLS master), media (HLS media playlist), mpd (DASH); 304s included',
      labelNames: ['kind'] as const, registers: [registry], collect() { fold(this, 'kind', hot.playlists) } }),
    responses: new Counter({ name: 'reelcdn_edge_player_responses_total', help: 'Player GET/HEAD answers by kind: full (200), range (206), multirange (206 multipart), head, not_modified (304)',
      labelNames: ['kind'] as const, registers: [registry], collect() { fold(this, 'kind', hot.responses) } }),
    ttfb: new Histogram({ name: 'reelcdn_edge_ttfb_seconds', help: 'Time from a player request to its first body byte, by the result of its first chunk read',
      labelNames: ['result'] as const, buckets: latencyBuckets, registers: [registry] }),
    upstreamBytes: new Counter({ name: 'reelcdn_edge_upstream_bytes_total', help: 'Chunk body bytes received from upstream, for players, readahead and prefill (origin offload: 1 - this / reelcdn_edge_bytes_served_total)', registers: [registry] }),
    unreadAhead: new Counter({ name: 'reelcdn_edge_unread_ahead_bytes_total', help: 'Bytes of chunks that readahead or prefill fetched and that left the cache (evicted, purged, refused) before any player read them, by who fetched them: upstream bytes spent for nothing',
      labelNames: ['by'] as const, registers: [registry], collect() { probes.sweepAhead?.(); fold(this, 'by', hot.unread) } }),
    upstreamRequests: new Counter({ name: 'reelcdn_edge_upstream_requests_total', help: 'Requests sent upstream by kind (meta, chunk, range, crcs: a chunk\'s block list) and result (ok, not_found, error, timeout)',
      labelNames: ['kind', 'result'] as const, registers: [registry] }),
    fillSeconds: new Histogram({ name: 'reelcdn_edge_fill_seconds', help: 'Time from starting a chunk fill to its verified end (or failure), by result',
      labelNames: ['result'] as const, buckets: fillBuckets, registers: [registry] }),
    fillsByFile: new Counter({ name: 'reelcdn_edge_fills_total', help: 'Chunk fills ended, by the kind of file (title, video, audio: an adaptive title\'s renditions) and result (ok: verified, error); players\', readahead\'s and prefill\'s alike',
      labelNames: ['file', 'result'] as const, registers: [registry] }),
    fillFailures: new Counter({ name: 'reelcdn_edge_fill_failures_total', help: 'Chunk fills that failed, by reason: timeout, upstream, digest, purged, withdrawn (a waiting fill whose every player left)',
      labelNames: ['reason'] as const, registers: [registry] }),
    fillRetries: new Counter({ name: 'reelcdn_edge_fill_retries_total', help: 'Upstream requests of chunk fills asked again from the last verified byte after the upstream broke off, by reason: cut (reset, refused or short body), status (the router answered 502/503), timeout (idle or headers timeout, or a 504)',
      labelNames: ['reason'] as const, registers: [registry] }),
    blockListFailures: new Counter({ name: 'reelcdn_edge_block_list_failures_total', help: 'Chunk fills that went on without their block list (whole-chunk verification: a short range at a chunk\'s end waits for the chunk) after two tries, by reason: timeout (edge.blockListTimeoutMs), not_found (a router or title without block lists), upstream (any other failure)',
      labelNames: ['reason'] as const, registers: [registry] }),
    // issue 16: chunk memory faulted once and reused by later fills (edge/tiers/chunk-arena.ts)
    chunkSlotsIdle: new Gauge({ name: 'reelcdn_edge_chunk_slots_idle_bytes', help: 'Bytes of chunk buffers nothing holds any more, kept (at most edge.maxFills of them) for the next fills to write into without faulting fresh memory',
      registers: [registry], collect() { if (probes.chunkSlots) this.set(probes.chunkSlots().idleBytes) } }),
    chunkSlotsPrefaulted: new Gauge({ name: 'reelcdn_edge_chunk_slots_prefaulted_bytes', help: 'Bytes of the RAM tier\'s chunk memory faulted in behind the edge\'s start (edge.ramPrefault); it only grows',
      registers: [registry], collect() { if (probes.chunkSlots) this.set(probes.chunkSlots().prefaulted) } }),
    chunkSlotsPrefaultPending: new Gauge({ name: 'reelcdn_edge_chunk_slots_prefault_pending_bytes', help: 'Bytes of the RAM tier\'s chunk memory still to be faulted in behind the edge\'s start (edge.ramPrefault); 0 once done or stopped, and when it does not run',
      registers: [registry], collect() { if (probes.chunkSlots) this.set(probes.chunkSlots().prefaultPending) } }),
    chunkSlots: new Counter({ name: 'reelcdn_edge_chunk_slots_total', help: 'Chunk buffers handed to fills, by result: reused (an idle one, already faulted in), reserved (created untouched when the edge started), allocated (created then: the arena had none idle or reserved of the chunk size)',
      labelNames: ['result'] as const, registers: [registry], collect() { if (probes.chunkSlots) incSince<'result', 'reused' | 'reserved' | 'allocated'>(this, 'result', probes.chunkSlots(), slotsSeen) } }),
    zeroCopy: new Counter({ name: 'reelcdn_edge_zero_copy_bytes_total', help: 'Bytes of RAM hits sent without a copy (edge.zeroCopy), by how: spliced (the pages handed to the socket), probe (copied: each response\'s first 64 KiB with its headers, and 64 KiB each time its socket was full)',
      labelNames: ['how'] as const, registers: [registry], collect() { if (probes.zeroCopy) incSince(this, 'how', probes.zeroCopy(), zeroCopySeen) } }),
    fills: new Gauge({ name: 'reelcdn_edge_fills_in_flight', help: 'Chunk fills in flight (each holds one chunk buffer)', registers: [registry],
      collect() { this.set(probes.fillsInFlight()) } }),
    fillBusy: new Counter({ name: 'reelcdn_edge_fill_busy_seconds_total', help: 'Seconds with at least one chunk fill in flight, however many overlapped: its rate is the fraction of the time the edge was filling',
      registers: [registry], collect() { if (probes.fillBusySeconds) incSince(this, undefined, { busy: probes.fillBusySeconds() }, busySeen) } }),
    readahead: new Counter({ name: 'reelcdn_edge_readahead_total', help: 'Readahead decisions: started, cached (already there or in flight), skipped (no free fill slot)',
      labelNames: ['result'] as const, registers: [registry], collect() { fold(this, 'result', hot.readahead) } }),
    tierBytes: new Gauge({ name: 'reelcdn_edge_tier_bytes', help: 'Verified chunk bytes held, by tier', labelNames: ['tier'] as const, registers: [registry],
      collect() { for (const t of tiers) this.set({ tier: t }, probes.tier(t).bytes) } }),
    tierEntries: new Gauge({ name: 'reelcdn_edge_tier_chunks', help: 'Chunks held, by tier', labelNames: ['tier'] as const, registers: [registry],
      collect() { for (const t of tiers) this.set({ tier: t }, probes.tier(t).entries) } }),
    tierCapacity: new Gauge({ name: 'reelcdn_edge_tier_capacity_bytes', help: 'Configured size of each tier', labelNames: ['tier'] as const, registers: [registry],
      collect() { for (const t of tiers) this.set({ tier: t }, probes.tier(t).capacity) } }),
    evictions: new Counter({ name: 'reelcdn_edge_evictions_total', help: 'Chunks evicted (or refused admission) by the tier\'s policy',
      labelNames: ['tier'] as const, registers: [registry] }),
    promotions: new Counter({ name: 'reelcdn_edge_promotions_total', help: 'Disk-to-RAM promotions by result: ok, skipped (too many in flight), failed',
      labelNames: ['result'] as const, registers: [registry] }),
    diskWritesPending: new Gauge({ name: 'reelcdn_edge_disk_writes_pending', help: 'Verified chunks queued for the disk tier or being written now', registers: [registry],
      collect() { this.set(probes.diskWritesPending?.() ?? 0) } }),
    diskWrites: new Counter({ name: 'reelcdn_edge_disk_writes_total', help: 'Verified chunks written to the disk tier by result: ok, dropped (queue full or purged), evicted (by the policy while being written), failed',
      labelNames: ['result'] as const, registers: [registry] }),
    corrupt: new Counter({ name: 'reelcdn_edge_corrupt_chunks_total', help: 'Disk-tier chunks found corrupt and dropped, by who found them: read (a player\'s read on the main thread), promotion, thread (a serve thread\'s read: edge.serveThreads)',
      labelNames: ['found_by'] as const, registers: [registry] }),
    recovered: new Counter({ name: 'reelcdn_edge_recovery_actions_total', help: 'Start-up reconciliation of the disk tier: tmp_removed, rows_dropped, orphans_removed, loaded',
      labelNames: ['action'] as const, registers: [registry] }),
    meta: new Counter({ name: 'reelcdn_edge_meta_lookups_total', help: 'Title metadata lookups by result: hit, miss, negative (a cached 404)',
      labelNames: ['result'] as const, registers: [registry], collect() { fold(this, 'result', hot.meta) } }),
    purges: new Counter({ name: 'reelcdn_edge_purges_total', help: 'Titles purged by DELETE /v1/cache/{contentId}', registers: [registry] }),
    blocked: new Gauge({ name: 'reelcdn_edge_responses_blocked', help: 'Player responses waiting for their player to read (backpressure)', registers: [registry],
      collect() { if (probes.blocked) this.set(probes.blocked()) } }),
    threadRequests: new Counter({ name: 'reelcdn_edge_serve_thread_requests_total', help: 'Requests the serve threads (edge.serveThreads) took: served (answered from RAM by the thread), relayed (passed to the main thread) or refused (malformed or unsupported, answered by the thread)',
      labelNames: ['outcome'] as const, registers: [registry] }),
    stalls: new Counter({ name: 'reelcdn_edge_send_stalls_total', help: 'Responses cut because the player stopped reading for longer than edge.sendStallTimeoutMs', registers: [registry] }),
    // issue 16: how chunk files reach the disk (edge/tiers/chunk-file-write.ts)
    diskWritten: new Counter({ name: 'reelcdn_edge_disk_written_bytes_total', help: 'Bytes of chunks written to the disk tier, by how: direct (from the chunk\'s memory to the device, O_DIRECT: edge.diskDirectWrites), page_cache (through the page cache: the setting off, memory or a length O_DIRECT cannot take, or a file system that refuses it). A file system may take O_DIRECT and still pass the bytes through its cache (ext4 data=journal): counted as direct',
      labelNames: ['how'] as const, registers: [registry], collect() { if (probes.diskWritten) incSince(this, 'how', probes.diskWritten(), writtenSeen) } }),
    // issue 14: the disk tier's write queue, bounded in bytes (edge/tiers/disk-writes.ts)
    diskWriteQueueBytes: new Gauge({ name: 'reelcdn_edge_disk_write_queue_bytes', help: 'Bytes of verified chunks queued for the disk tier or being written now (bounded by edge.diskWriteQueueBytes)',
      registers: [registry] }),
    diskWriteDrops: new Counter({ name: 'reelcdn_edge_disk_write_drops_total', help: 'Verified chunks not written to the disk tier, by reason: queue_full (no room within edge.diskWriteQueueBytes), purged',
      labelNames: ['reason'] as const, registers: [registry] }),
    diskBackpressure: new Counter({ name: 'reelcdn_edge_disk_backpressure_total', help: 'Fills not started because the disk tier\'s write queue had no room for them and the fills in flight, by who asked: readahead, prefill',
      labelNames: ['by'] as const, registers: [registry] }),
  }
}
export type EdgeMetrics = ReturnType<typeof edgeMetrics>

/** Issue 5: the edge's prefill runner (edge/prefill/prefill.ts). */
export interface PrefillProbes {
  running(): number
  paused(): number
  windowBytes(): number
  plannedBytes(): number
}

export function prefillMetrics(registry: Registry, probes: PrefillProbes) {
  return {
    bytes: new Counter({ name: 'reelcdn_edge_prefill_bytes_total', help: 'Chunk bytes prefill fetched from upstream (fills it started)', registers: [registry] }),
    chunks: new Counter({ name: 'reelcdn_edge_prefill_chunks_total', help: 'Planned chunks by outcome: fetched, joined (a fill already in flight), cached, refused (victims hotter), failed, over_budget',
      labelNames: ['result'] as const, registers: [registry] }),
    passes: new Counter({ name: 'reelcdn_edge_prefill_passes_total', help: 'Prefill passes by how they ended: done, stopped, window_closed, budget_spent, failed',
      labelNames: ['result'] as const, registers: [registry] }),
    pauses: new Counter({ name: 'reelcdn_edge_prefill_pauses_total', help: 'Times prefill paused for player traffic (player fills in flight or a recent player miss)', registers: [registry] }),
    running: new Gauge({ name: 'reelcdn_edge_prefill_running', help: '1 while a prefill pass runs', registers: [registry], collect() { this.set(probes.running()) } }),
    paused: new Gauge({ name: 'reelcdn_edge_prefill_paused', help: '1 while a prefill pass waits for player traffic to calm', registers: [registry], collect() { this.set(probes.paused()) } }),
    windowBytes: new Gauge({ name: 'reelcdn_edge_prefill_window_bytes', help: 'Bytes prefill fetched in the current fill window (against edge.prefill.budgetBytes)', registers: [registry], collect() { this.set(probes.windowBytes()) } }),
    plannedBytes: new Gauge({ name: 'reelcdn_edge_prefill_planned_bytes', help: 'Bytes in the current (or last) pass\'s plan', registers: [registry], collect() { this.set(probes.plannedBytes()) } }),
  }
}
export type PrefillMetrics = ReturnType<typeof prefillMetrics>
/** What the router's gauges read when scraped. */
export interface RouterProbes {
  shards(): { id: string; up: boolean; outstanding: number; chunksOk: number; chunksCorrupt: number; storedBytes: number }[]
  /** counts from the last repair scan; undefined before the first */
  replicas(): { underReplicated: number; lost: number; misplaced: number; orphans: number } | undefined
  /** refused chunk copies remembered (router/cluster/refused-copies.ts) */
  refusedCopies?(): number
  /** the ingest buffer pool (router/ingest/buffer-pool.ts); absent where nothing ingests */
  ingestBuffers?(): { inUse: number; idle: number }
  /** the relay's slabs, in bytes (router/read/shard-windows.ts); absent where nothing relays */
  relaySlabs?(): { inUse: number; idle: number }
}

export function routerMetrics(registry: Registry, probes: RouterProbes) {
  // `shard` labels are shard ids from the cluster config: a handful, not per-title
  return {
    shardUp: new Gauge({ name: 'reelcdn_router_shard_up', help: 'Shard health after hysteresis: 1 up, 0 down',
      labelNames: ['shard'] as const, registers: [registry],
      collect() { for (const s of probes.shards()) this.set({ shard: s.id }, s.up ? 1 : 0) } }),
    shardOutstanding: new Gauge({ name: 'reelcdn_router_shard_outstanding_requests', help: 'Requests to the shard in flight now (what reads are spread by)',
      labelNames: ['shard'] as const, registers: [registry],
      collect() { for (const s of probes.shards()) this.set({ shard: s.id }, s.outstanding) } }),
    shardChunks: new Gauge({ name: 'reelcdn_router_shard_chunks', help: 'Chunks each shard reported at its last health check, by state',
      labelNames: ['shard', 'state'] as const, registers: [registry],
      collect() {
        for (const s of probes.shards()) { this.set({ shard: s.id, state: 'ok' }, s.chunksOk); this.set({ shard: s.id, state: 'corrupt' }, s.chunksCorrupt) }
      } }),
    shardStoredBytes: new Gauge({ name: 'reelcdn_router_shard_stored_bytes', help: 'Chunk bytes each shard reported at its last health check',
      labelNames: ['shard'] as const, registers: [registry],
      collect() { for (const s of probes.shards()) this.set({ shard: s.id }, s.storedBytes) } }),
    replicas: new Gauge({ name: 'reelcdn_router_replica_problems', help: 'From the last repair scan, after its repairs: under_replicated and lost chunks, misplaced and orphan replicas',
      labelNames: ['kind'] as const, registers: [registry],
      collect() {
        const r = probes.replicas()
        if (!r) return
        this.set({ kind: 'under_replicated' }, r.underReplicated); this.set({ kind: 'lost' }, r.lost)
        this.set({ kind: 'misplaced' }, r.misplaced); this.set({ kind: 'orphan' }, r.orphans)
      } }),
    upstream: new Counter({ name: 'reelcdn_router_upstream_requests_total', help: 'Requests to shards by shard, operation and result (2xx, 4xx, 5xx, error, timeout)',
      labelNames: ['shard', 'op', 'result'] as const, registers: [registry] }),
    failovers: new Counter({ name: 'reelcdn_router_read_failovers_total', help: 'Reads moved to the next owner, by reason',
      labelNames: ['reason'] as const, registers: [registry] }),
    bytesServed: new Counter({ name: 'reelcdn_router_bytes_served_total', help: 'Content bytes sent to clients', registers: [registry] }),
    blockMismatches: new Counter({ name: 'reelcdn_router_block_mismatches_total', help: 'Shard answers that failed verification against the manifest (a 64 KiB block whose CRC32C, or a block list whose SHA-256, did not match); the read moved to the next owner',
      labelNames: ['shard', 'what'] as const, registers: [registry] }),
    digestMismatches: new Counter({ name: 'reelcdn_router_chunk_digest_mismatches_total', help: 'Whole chunks whose bytes did not hash to the manifest digest (the response was cut)', registers: [registry] }),
    manifestLookups: new Counter({ name: 'reelcdn_router_manifest_lookups_total', help: 'Manifest lookups by result (cached, fetched, missing)',
      labelNames: ['result'] as const, registers: [registry] }),
    ingests: new Counter({ name: 'reelcdn_router_ingests_total', help: 'Ingest requests by result (created, exists, conflict, failed)',
      labelNames: ['result'] as const, registers: [registry] }),
    ingestBytes: new Counter({ name: 'reelcdn_router_ingest_bytes_total', help: 'Bytes received by ingests', registers: [registry] }),
    renditionUploads: new Counter({ name: 'reelcdn_router_rendition_uploads_total', help: 'Rendition file uploads of adaptive titles by result (stored, exists, conflict, failed)',
      labelNames: ['result'] as const, registers: [registry] }),
    publishes: new Counter({ name: 'reelcdn_router_adaptive_publishes_total', help: 'Adaptive title publishes by result (created, exists, conflict, refused: a bad record or ladder, missing: a chunk not on enough owners, failed)',
      labelNames: ['result'] as const, registers: [registry] }),
    publishChecks: new Counter({ name: 'reelcdn_router_publish_chunk_checks_total', help: 'Chunks an adaptive publish checked on their owners (digest and block list) by result (ok, missing, error)',
      labelNames: ['result'] as const, registers: [registry] }),
    ingestChunks: new Counter({ name: 'reelcdn_router_ingest_chunk_writes_total', help: 'Chunk replicas of ingests: stored, or already there (resumed)',
      labelNames: ['result'] as const, registers: [registry] }),
    ingestBuffers: new Gauge({ name: 'reelcdn_router_ingest_buffers', help: 'Ingest chunk buffers: lent to an ingest now (in_use), or kept for reuse (idle)',
      labelNames: ['state'] as const, registers: [registry],
      collect() { const b = probes.ingestBuffers?.(); if (b) { this.set({ state: 'in_use' }, b.inUse); this.set({ state: 'idle' }, b.idle) } } }),
    relaySlabBytes: new Gauge({ name: 'reelcdn_router_relay_slab_bytes', help: 'Memory the relay reads shard bytes into: lent to reads in flight and bytes still being written to their clients (in_use), or kept for reuse (idle)',
      labelNames: ['state'] as const, registers: [registry],
      collect() { const b = probes.relaySlabs?.(); if (b) { this.set({ state: 'in_use' }, b.inUse); this.set({ state: 'idle' }, b.idle) } } }),
    ingestBuffersRetired: new Counter({ name: 'reelcdn_router_ingest_buffers_retired_total', help: 'Ingest buffers dropped instead of reused because a failed or cut PUT may still have been sending from them (a new one is allocated)',
      registers: [registry] }),
    refusedCopies: new Counter({ name: 'reelcdn_router_refused_copies_total', help: 'Chunk copies a shard refused to serve (corrupt, missing, other bytes): remembered (noted), asked last by a read (avoided), forgotten once stored or read again (cleared)',
      labelNames: ['event'] as const, registers: [registry] }),
    refusedCopiesHeld: new Gauge({ name: 'reelcdn_router_refused_copies', help: 'Refused chunk copies remembered now (bounded by router.refusedCopies.max, each for router.refusedCopies.ttlMs)',
      registers: [registry], collect() { const n = probes.refusedCopies?.(); if (n !== undefined) this.set(n) } }),
    repairActions: new Counter({ name: 'reelcdn_router_repair_actions_total', help: 'Repairer actions by kind',
      labelNames: ['action'] as const, registers: [registry] }),
    repairBytes: new Counter({ name: 'reelcdn_router_repair_bytes_total', help: 'Chunk bytes copied by the repairer', registers: [registry] }),
    repairPasses: new Counter({ name: 'reelcdn_router_repair_passes_total', help: 'Repair passes by result (done, failed)',
      labelNames: ['result'] as const, registers: [registry] }),
  }
}
export type RouterMetrics = ReturnType<typeof routerMetrics>

/** What `reelcdn edge report` found last (edge/report.ts): byte hit ratio and origin offload per policy, MIN's, and each over MIN's. */
export interface PolicyReportProbe {
  ratios: Record<string, { byteHitRatio: number; ofOptimum: number; offload?: number | null }>
  at: number
}

/**
 * The edge's gap to the optimum, as of the last `reelcdn edge report` run: the
 * report writes its figures next to the request log and the edge serves them
 * here on every scrape. Labels are the few policy names plus `achieved` (what
 * the edge really served) and `min`.
 */
export function edgePolicyMetrics(registry: Registry, probe: () => PolicyReportProbe | undefined) {
  const each = (f: (r: PolicyReportProbe['ratios'][string]) => number | null | undefined) => function (this: Gauge<'policy'>) {
    this.reset()
    const r = probe()
    if (!r) return
    for (const [policy, v] of Object.entries(r.ratios)) {
      const x = f(v)
      if (x !== null && x !== undefined) this.set({ policy }, x)
    }
  }
  return {
    byteHitRatio: new Gauge({ name: 'reelcdn_edge_report_byte_hit_ratio', help: 'Byte hit ratio over the logged requests, as of the last `reelcdn edge report`: achieved (served), min (Belady), and each policy simulated at the configured size',
      labelNames: ['policy'] as const, registers: [registry], collect: each(v => v.byteHitRatio) }),
    offload: new Gauge({ name: 'reelcdn_edge_report_origin_offload', help: 'Origin offload (1 - upstream bytes / bytes read) over the logged requests, as of the last `reelcdn edge report`: achieved (the edge\'s own upstream bytes), min, and each policy simulated at the configured size',
      labelNames: ['policy'] as const, registers: [registry], collect: each(v => v.offload) }),
    ofOptimum: new Gauge({ name: 'reelcdn_edge_report_of_optimum', help: 'Byte hit ratio over MIN\'s, as of the last `reelcdn edge report` (1 = optimal)',
      labelNames: ['policy'] as const, registers: [registry], collect: each(v => v.ofOptimum) }),
    reportTime: new Gauge({ name: 'reelcdn_edge_report_timestamp_seconds', help: 'When the last `reelcdn edge report` ran (0: never)', registers: [registry],
      collect() { this.set((probe()?.at ?? 0) / 1000) } }),
  }
}

/**
 * The fill path's direct reads (docs/fill-path.md), one function per service
 * so each registers only its own. Router: grant answers by result. Shard:
 * grant checks by result and the bytes it sent under grants. Edge: fill bytes
 * by path, grant lookups, moves to the next owner and falls back to the relay.
 */
export function routerFillGrantMetrics(registry: Registry) {
  return {
    grants: new Counter({ name: 'reelcdn_router_fill_grants_total', help: 'Fill grant answers by result (issued: chunk grants signed; capped: chunks asked for that the per-edge cap left out of an answer; disabled, throttled, not_found: requests refused; manifest_only: a manifest=1 question answered with the manifest and no grants, its chunk guessed wrong or its edge over its rate)',
      labelNames: ['result'] as const, registers: [registry] }),
  }
}
export type RouterFillGrantMetrics = ReturnType<typeof routerFillGrantMetrics>

export function originGrantMetrics(registry: Registry) {
  return {
    checks: new Counter({ name: 'reelcdn_origin_fill_grants_total', help: 'Fill grants presented, by result (ok, expired, forged, wrong_chunk, wrong_shard, malformed, no_shard_id, disabled)',
      labelNames: ['result'] as const, registers: [registry] }),
    bytes: new Counter({ name: 'reelcdn_origin_fill_grant_bytes_total', help: 'Chunk body bytes sent to edges under fill grants', registers: [registry] }),
  }
}
export type OriginGrantMetrics = ReturnType<typeof originGrantMetrics>

export function edgeFillPathMetrics(registry: Registry) {
  const bytes = tallies(['direct', 'relay'] as const)
  return {
    /** plain adds on the fill path, folded when scraped */
    bytes,
    fillBytes: new Counter({ name: 'reelcdn_edge_fill_bytes_total', help: 'Chunk body bytes a fill received, by path (direct: from the owning shards under a grant; relay: through the router)',
      labelNames: ['path'] as const, registers: [registry], collect() { fold(this, 'path', bytes) } }),
    grants: new Counter({ name: 'reelcdn_edge_fill_grant_requests_total', help: 'Grant lookups by result (router: asked the router; cached; refused, throttled, error: the chunk goes by the relay)',
      labelNames: ['result'] as const, registers: [registry] }),
    failovers: new Counter({ name: 'reelcdn_edge_fill_failovers_total', help: 'Direct reads moved to the next owner, by reason (cut, corrupt, refused, grant)',
      labelNames: ['reason'] as const, registers: [registry] }),
    headLists: new Counter({ name: 'reelcdn_edge_fill_head_block_lists_total', help: 'Block lists shards sent in a chunk answer\'s head, by result (used; mismatch: not the manifest\'s, not used)',
      labelNames: ['result'] as const, registers: [registry] }),
    fallbacks: new Counter({ name: 'reelcdn_edge_fill_relay_fallbacks_total', help: 'Chunk requests of a direct fill sent by the relay instead, by reason (no_grant: the router gave none; owners: no owner could serve)',
      labelNames: ['reason'] as const, registers: [registry] }),
  }
}
export type EdgeFillPathMetrics = ReturnType<typeof edgeFillPathMetrics>

/**
 * Issue 18's alerts. A labelled counter has no series until its first count,
 * and `rate()`/`increase()` cannot see that first count (there is no earlier
 * sample to difference against): an alert on the error outcomes would miss
 * the first error and show "no data" until then. So the error outcomes (and
 * the unread-ahead waste) the alert rules and dashboards (deploy/) read start at 0.
 */
/** Why fills that failed a player failed (reelcdn_edge_fill_failures_total); `withdrawn` (a waiting fill whose every player left) failed no one */
export const FILL_FAILURE_REASONS = ['timeout', 'upstream', 'digest', 'purged'] as const

export function zeroEdgeErrorSeries(m: EdgeMetrics): void {
  for (const file of FILE_KINDS) m.fillsByFile.inc({ file, result: 'error' }, 0)
  for (const reason of [...FILL_FAILURE_REASONS, 'withdrawn']) m.fillFailures.inc({ reason }, 0)
  m.diskWrites.inc({ result: 'failed' }, 0)
  m.promotions.inc({ result: 'failed' }, 0)
  for (const by of ['read', 'promotion', 'thread']) m.corrupt.inc({ found_by: by }, 0)
  // not an error, but bytes spent for nothing, which the edge dashboard plots
  for (const by of AHEAD_KINDS) m.unreadAhead.inc({ by }, 0)
}

/** The edges the router knows from their heartbeats, by state (router/playback/edge-registry.ts): what "an edge went silent" alerts on. */
export function routerEdgeMetrics(registry: Registry, counts: () => { live: number; unhealthy: number; silent: number; gone: number }) {
  const states = ['live', 'unhealthy', 'silent', 'gone'] as const
  return {
    edges: new Gauge({ name: 'reelcdn_router_edges', help: 'Edges known from their heartbeats, by state: live (offered to players), unhealthy (its last heartbeat said so), silent (no heartbeat for router.edgeSilenceMs after a healthy one: lost), gone (quiet after an unhealthy last heartbeat, such as the farewell of a planned stop); kept until the router restarts',
      labelNames: ['state'] as const, registers: [registry],
      collect() { const c = counts(); for (const s of states) this.set({ state: s }, c[s]) } }),
  }
}

/**
 * The certificate a service serves (http.tlsCertFile): when it expires, asked
 * on every scrape (lib/http/http.ts keeps it beside the server, so whatever swaps
 * the certificate updates it). Registered only where TLS is on.
 */
export function tlsMetrics(registry: Registry, notAfterMs: () => number) {
  return {
    expiry: new Gauge({ name: 'reelcdn_tls_certificate_expiry_timestamp_seconds', help: 'When the TLS certificate this service serves expires (its notAfter), in Unix seconds',
      registers: [registry], collect() { this.set(notAfterMs() / 1000) } }),
  }
}

/**
 * Steering (issue 17, docs/steering.md): heartbeats the router refused, by
 * the field that was wrong (a fixed list, so the label stays low-cardinality),
 * and /v1/play's first URL by why that edge came first.
 */
export const HEARTBEAT_REFUSALS = ['id', 'url', 'networks', 'regions', 'healthy', 'load', 'freeBytes', 'site', 'capacityBytes', 'body', 'too_many_edges'] as const
export type HeartbeatRefusal = (typeof HEARTBEAT_REFUSALS)[number]
export const STEERING_CHOICES = ['owner', 'hot_owner', 'over_bound', 'load', 'no_local'] as const
export type SteeringChoice = (typeof STEERING_CHOICES)[number]

export function routerSteeringMetrics(registry: Registry) {
  return {
    refused: new Counter({ name: 'reelcdn_router_heartbeats_refused_total',
      help: 'Edge heartbeats refused (400), by the field that was wrong (body: not JSON or unknown fields; too_many_edges: the registry is full)',
      labelNames: ['reason'] as const, registers: [registry] }),
    steered: new Counter({ name: 'reelcdn_router_steered_total',
      help: '/v1/play answers by their first URL (owner: the title\'s first owner; hot_owner: another of a hot title\'s owners; over_bound: an owner past one above the load bound; load: router.steering=load; no_local: no edge local to the client)',
      labelNames: ['choice'] as const, registers: [registry] }),
    plays: new Counter({ name: 'reelcdn_router_plays_steered_total',
      help: '/v1/play answers by the edge they name first: each edge\'s share of plays, the load the steering bound counts (router.steeringLoadFactor); one series per edge in the registry, which is bounded',
      labelNames: ['edge'] as const, registers: [registry] }),
    hotTitles: new Gauge({ name: 'reelcdn_router_steering_hot_titles', help: 'Titles with router.steeringHotMinPlays plays or more in the window: those whose demand may give them more than one owner at a site', registers: [registry] }),
  }
}
export type RouterSteeringMetrics = ReturnType<typeof routerSteeringMetrics>

/** Peer fill inside a site (docs/peer-fill.md, issue 17): the asking edge's outcomes and the owner's answers. */
export function edgePeerMetrics(registry: Registry) {
  /** plain adds on the byte path, folded when scraped */
  const tally = { n: 0 }
  const m = {
    tally,
    fills: new Counter({ name: 'reelcdn_edge_peer_fills_total', help: 'Chunk requests of fills this edge sent to the title\'s owner at its site, by outcome (served; fell back to its own fill path: timeout, refused, error; held: the owner failed lately and was not asked)',
      labelNames: ['outcome'] as const, registers: [registry] }),
    bytes: new Counter({ name: 'reelcdn_edge_peer_fill_bytes_total', help: 'Verified chunk bytes this edge\'s fills received from owners at its site', registers: [registry],
      collect() { if (tally.n > 0) this.inc(tally.n); tally.n = 0 } }),
    served: new Counter({ name: 'reelcdn_edge_peer_served_total', help: 'Peer requests this edge answered as a title\'s owner, by kind (chunk, crcs) and where the chunk was (ram, disk, fill)',
      labelNames: ['kind', 'from'] as const, registers: [registry] }),
    servedBytes: new Counter({ name: 'reelcdn_edge_peer_served_bytes_total', help: 'Chunk body bytes this edge sent to peers at its site as the titles\' owner', registers: [registry] }),
    refused: new Counter({ name: 'reelcdn_edge_peer_refused_total', help: 'Peer requests this edge refused, by reason (credential, forbidden, hop, loop, not_member, not_owner, no_site, bad_request)',
      labelNames: ['reason'] as const, registers: [registry] }),
    members: new Gauge({ name: 'reelcdn_edge_site_members', help: 'Edges of this edge\'s site in the router\'s last heartbeat reply, itself included (0: no site)', registers: [registry] }),
  }
  // every outcome and reason from 0, as zeroEdgeErrorSeries does for issue 18's alerts: rate() cannot see a counter's first count
  for (const outcome of ['served', 'timeout', 'refused', 'error', 'held']) m.fills.inc({ outcome }, 0)
  for (const reason of ['credential', 'forbidden', 'hop', 'loop', 'no_site', 'not_member', 'not_owner', 'bad_request']) m.refused.inc({ reason }, 0)
  return m
}
export type EdgePeerMetrics = ReturnType<typeof edgePeerMetrics>
