import { Worker } from 'node:worker_threads'
import type { Config } from '../../lib/config/config.js'
import { logUrl, type HttpService } from '../../lib/http/http.js'
import type { Logger } from '../../lib/logger.js'
import type { Manifest } from '../../lib/manifest.js'
import { FILE_KINDS, PLAYLIST_KINDS, RESPONSE_KINDS, type EdgeMetrics } from '../../lib/metrics.js'
import type { DemandRecorder } from '../prefill/demand.js'
import type { MetaCache, MetaWatcher } from '../fill/meta-cache.js'
import type { RamWatcher } from '../tiers/ram-tier.js'
import type { DiskWatcher } from '../tiers/disk-tier.js'
import type { DiskRow } from '../tiers/disk-index.js'
import type { TitleReader } from './reader.js'
import { TTFB_LABELS } from './server.js'
import { chunkRef, fileOf, type Title } from '../title.js'

/**
 * `edge.serveThreads`: threads that serve RAM and disk hits next to the main thread.
 *
 * Why: one Node thread answering 1 MiB ranges spends most of its time in the
 * kernel's copy of each body to the socket, and between its writes the cores
 * sit idle part of the time; a second thread doing the same work on the same
 * port keeps them busy (docs/benchmarks.md has the figures).
 *
 * How, with what Node 20 offers (no SO_REUSEPORT, no passing a socket to a
 * thread):
 * - the main thread listens; each serve thread listens on the same socket
 *   through a descriptor of its own (edge/serve/listen-dup.ts), so the kernel hands
 *   each new connection to whichever thread accepts it first, and each thread
 *   closes only its own descriptor;
 * - the RAM tier's chunk Buffers are allocated in shared memory
 *   (SharedArrayBuffer) when threads are on, and every chunk that enters or
 *   leaves the tier is posted to the threads, which keep a map of the same
 *   Buffers: a hit is served from the very bytes the main thread verified,
 *   never copied. An evicted chunk may be served for the moment its removal
 *   is in flight: its bytes are still valid, and its memory is freed once no
 *   thread refers to it;
 * - the disk tier's readable chunks are posted the same way (their rows, as
 *   each file is in place, and each removal before its file is unlinked): a
 *   thread reads a disk hit itself, from its own file handles, verified with
 *   the index's block CRCs as the main thread verifies (edge/serve/thread-disk.ts
 *   has the handshake and why it is safe); a corrupt block is never sent, and
 *   the main thread, the only writer, drops the chunk (`corrupt`);
 * - title metadata is posted the same way, with its expiry; a purge answers
 *   only after every thread has dropped the title (`sync`); a thread builds
 *   its own Title from the manifest, so it answers an adaptive title's
 *   playlists itself (generated as the main thread would: edge/serve/playlists.ts)
 *   and its renditions' RAM hits as a title's;
 * - a thread relays everything else to the main thread over a local socket
 *   (HttpService.listenRelay), with the client's address;
 * - what a hit changes (policy recency, readahead, promotion, sessions,
 *   demand, metrics) comes back in batches and is applied by the main thread
 *   (`onBatch`), so the policies see every hit and one scrape of /metrics sees
 *   every thread's requests (the gauges too: answers in flight, responses
 *   blocked on their player).
 */
export interface ThreadInit {
  relayPath: string
  secret: string
  config: Readonly<Config>
  env: NodeJS.ProcessEnv
  /** whether hits carry a session id (session-aware policy or request log on) */
  sessions: boolean
  flushMs: number
  /** the methods the edge takes on some route (HttpService.allowed): the Allow of a thread's answer to CONNECT */
  allow: string
}

export interface Batch {
  responses: Record<(typeof RESPONSE_KINDS)[number], number>
  /** body bytes by kind of file, and playlists answered by kind (as the main thread's hot tallies) */
  files: Record<(typeof FILE_KINDS)[number], number>
  playlists: Record<(typeof PLAYLIST_KINDS)[number], number>
  /** requests answered by the thread / passed to the main thread */
  served: number
  relayed: number
  /** requests the thread refused itself (malformed, unsupported) */
  refused: number
  /** the reasons of the requests refused or cut on the client's side (reelcdn_http_client_errors_total) */
  clientErrors: string[]
  /** chunk reads and body bytes served from RAM, and from disk (as the main thread's hot tallies) */
  reads: number
  bytes: number
  diskReads: number
  diskBytes: number
  /** disk-hit body bytes by kind of file (`files` has the RAM hits') */
  diskFiles: Record<(typeof FILE_KINDS)[number], number>
  stalls: number
  /** ended responses still waiting for their player, now */
  pending: number
  /** requests the thread is answering itself, now (relayed ones are the main thread's) */
  inflight: number
  /** seconds to the first byte of RAM hits, of disk hits */
  ttfb: number[]
  diskTtfb: number[]
  /** flat: route, method, status, seconds, finished (1/0) */
  http: (string | number)[]
  /** flat: contentId, rendition id ('' for the title's own file), chunk index, session ('' without), bytes, chunk key, moves (1/0: not an init segment), from disk (1/0) */
  hits: (string | number)[]
  /** flat: demand key, contentId, rendition id (''), kind of file, first chunk, last chunk, chunks in the file */
  demand: (string | number)[]
  /** with log.requests: flat request id, method, URL, status, milliseconds, finished (1/0), the peer's address */
  log: (string | number)[]
}

export type ToThread =
  | { t: 'ram+'; key: string; bytes: Uint8Array }
  | { t: 'ram-'; keys: string[] }
  | { t: 'disk+'; rows: DiskRow[] }
  | { t: 'disk-'; keys: string[] }
  | { t: 'meta+'; id: string; manifest: Manifest; expiresAt: number }
  | { t: 'meta-'; id: string }
  | { t: 'sync'; n: number }
  | { t: 'listen'; fd: number }
  | { t: 'drain'; graceMs: number; lingerMs?: number }

export type ToMain =
  | { t: 'batch'; batch: Batch }
  | { t: 'synced'; n: number }
  | { t: 'listening' }
  | { t: 'drained' }
  | { t: 'error'; message: string }
  | { t: 'corrupt'; key: string; block: number }

/** The player routes, as HttpService names them in its metrics. */
export const CONTENT_ROUTE = '/v1/content/:id'
export const FILE_ROUTE = '/v1/content/:id/:file'
export const TOKEN_FILE_ROUTE = '/v1/content/:id/t/:token/:file'

/** Shared memory for a chunk, so serve threads can send it. */
export function sharedChunk(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size))
}

/** What the main thread does with what a thread reports. */
export interface ThreadHooks {
  batch(b: Batch): void
  /** a thread found block `block` of disk chunk `key` corrupt and did not send it: the main thread drops the chunk */
  corrupt(key: string, block: number): void
}

export class ServeThreads implements RamWatcher, MetaWatcher {
  private readonly workers: Worker[] = []
  private readonly pending = new Map<Worker, number>()
  private readonly inflight = new Map<Worker, number>()
  private readonly waits = new Map<string, () => void>()
  private syncs = 0
  private closed = false

  /** Starts `n` threads; they listen once `listen` gives them the main thread's descriptor. */
  constructor(n: number, init: ThreadInit, private readonly hooks: ThreadHooks, private readonly logger: Logger) {
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./serve-thread.js', import.meta.url), { workerData: init })
      w.on('message', (m: ToMain) => this.receive(w, m))
      w.on('error', err => logger.error({ err, thread: w.threadId }, 'serve thread failed'))
      const id = w.threadId // -1 once it has exited
      w.on('exit', code => {
        this.pending.delete(w)
        this.inflight.delete(w)
        this.workers.splice(this.workers.indexOf(w), 1)
        // nothing waits for it any more
        for (const [k, settle] of this.waits) if (k.startsWith(`${id}:`)) settle()
        // the main thread and the other threads go on serving; this one's connections were cut
        if (!this.closed) logger.error({ thread: id, code }, 'serve thread exited')
      })
      // after the listeners (a 'message' listener refs the port again): a thread never keeps the process alive
      w.unref()
      this.workers.push(w)
    }
  }

  private receive(w: Worker, m: ToMain): void {
    switch (m.t) {
      case 'batch':
        this.pending.set(w, m.batch.pending)
        this.inflight.set(w, m.batch.inflight)
        this.hooks.batch(m.batch)
        break
      case 'corrupt': this.hooks.corrupt(m.key, m.block); break
      case 'synced': this.waits.get(`${w.threadId}:synced:${m.n}`)?.(); break
      case 'listening': this.waits.get(`${w.threadId}:listening`)?.(); break
      case 'drained': this.waits.get(`${w.threadId}:drained`)?.(); break
      case 'error': this.logger.error({ thread: w.threadId, err: m.message }, 'serve thread: uncaught error'); break
    }
  }

  /** Posts `msg` to every thread and waits for each one's answer, up to `timeoutMs` (then resolves, or with `what`, rejects). */
  private each(key: (w: Worker) => string, msg: ToThread, timeoutMs: number, what?: string): Promise<void> {
    return Promise.all(this.workers.map(w => new Promise<void>((resolve, reject) => {
      const k = key(w)
      const timer = setTimeout(() => {
        this.waits.delete(k)
        if (what === undefined) resolve()
        else reject(new Error(`serve thread ${w.threadId} did not ${what} within ${timeoutMs} ms`))
      }, timeoutMs)
      function done() { clearTimeout(timer); resolve() }
      this.waits.set(k, () => { this.waits.delete(k); done() })
      w.postMessage(msg)
    }))).then(() => {})
  }

  private post(msg: ToThread): void {
    for (const w of this.workers) w.postMessage(msg)
  }

  /**
   * The threads accept on the main thread's listening descriptor from now on.
   * Each forks a helper process to get its own copy of it (listen-dup.ts): a
   * Node start, which on a loaded 2-core machine took over 10 s (seen in test
   * runs next to other work), so the bound is generous: it only catches a
   * thread that will never listen.
   */
  listen(fd: number): Promise<void> {
    return this.each(w => `${w.threadId}:listening`, { t: 'listen', fd }, 60_000, 'start listening')
  }

  added(key: string, buf: Buffer): void {
    // only shared memory can be posted without a copy; a chunk in ordinary memory stays a relayed hit
    if (buf.buffer instanceof SharedArrayBuffer) this.post({ t: 'ram+', key, bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.length) })
  }

  removed(keys: string[]): void {
    this.post({ t: 'ram-', keys })
  }

  /** The disk tier's watcher (DiskTier.watch): its rows are plain data, posted (copied) as they are. */
  readonly disk: DiskWatcher = {
    added: rows => this.post({ t: 'disk+', rows }),
    removed: keys => this.post({ t: 'disk-', keys }),
  }

  cached(id: string, title: Title, expiresAt: number): void {
    this.post({ t: 'meta+', id, manifest: title.manifest, expiresAt })
  }

  dropped(id: string): void {
    this.post({ t: 'meta-', id })
  }

  /** Resolves once every thread has applied every message posted before (a thread that does not answer in 5 s is logged). */
  sync(): Promise<void> {
    const n = ++this.syncs
    return this.each(w => `${w.threadId}:synced:${n}`, { t: 'sync', n }, 5_000, 'confirm a purge').catch(err => {
      this.logger.error({ err }, 'serve thread did not confirm: it may serve a purged title until its copy expires')
    })
  }

  /** Threads running now (fewer than edge.serveThreads after one exited): the status console's figure */
  get alive(): number {
    return this.workers.length
  }

  /** Requests the threads are answering themselves now (relayed ones are in the main thread's count). */
  answering(): number {
    let n = 0
    for (const v of this.inflight.values()) n += v
    return n
  }

  /** Ended responses the threads' players have not taken yet. */
  blocked(): number {
    let n = 0
    for (const v of this.pending.values()) n += v
    return n
  }

  /** The threads stop accepting, finish their answers in flight (up to `graceMs`), close their connections and end. */
  /** `lingerMs`: an upgrade's drain (lib/http/http.ts, close({ handover })): keep-alive connections may end themselves for that long first. */
  async drain(graceMs: number, lingerMs = 0): Promise<void> {
    this.closed = true
    await this.each(w => `${w.threadId}:drained`, { t: 'drain', graceMs, lingerMs }, graceMs + 5_000)
    await Promise.all(this.workers.map(w => w.terminate()))
    this.pending.clear()
    this.inflight.clear()
  }
}

/**
 * What the main thread does with a thread's batch: the counts go into the
 * metrics, the answers into the HTTP metrics (and the request log, when on),
 * and each hit does what serving it here would have done besides sending:
 * policy recency (the RAM or the disk tier's), readahead, promotion of a disk
 * hit, sessions, demand.
 */
export function batchApplier(d: { metrics: EdgeMetrics; http: HttpService; meta: MetaCache; reader: TitleReader; demand: DemandRecorder; logger: Logger }): (b: Batch) => void {
  const { metrics: m, http, meta, reader, demand, logger } = d
  const contentLabels = http.routeLabels('/v1/content/:id')
  const ttfb = m.ttfb.labels(TTFB_LABELS.ram_hit)
  const diskTtfb = m.ttfb.labels(TTFB_LABELS.disk_hit)
  return b => {
    for (const k of RESPONSE_KINDS) m.hot.responses[k].n += b.responses[k]
    for (const k of FILE_KINDS) {
      m.hot.files[k].ram_hit.n += b.files[k]
      m.hot.files[k].disk_hit.n += b.diskFiles[k]
    }
    for (const k of PLAYLIST_KINDS) m.hot.playlists[k].n += b.playlists[k]
    if (b.served > 0) m.threadRequests.inc({ outcome: 'served' }, b.served)
    if (b.relayed > 0) m.threadRequests.inc({ outcome: 'relayed' }, b.relayed)
    if (b.refused > 0) m.threadRequests.inc({ outcome: 'refused' }, b.refused)
    for (const reason of b.clientErrors) http.refusedClient(reason)
    m.hot.reads.ram_hit.n += b.reads
    m.hot.bytes.ram_hit.n += b.bytes
    m.hot.reads.disk_hit.n += b.diskReads
    m.hot.bytes.disk_hit.n += b.diskBytes
    m.hot.meta.hit.n += b.served // every answer a thread gives is a metadata hit in its copy
    if (b.stalls > 0) m.stalls.inc(b.stalls)
    for (const secs of b.ttfb) ttfb.observe(secs)
    for (const secs of b.diskTtfb) diskTtfb.observe(secs)
    for (let i = 0; i < b.http.length; i += 5) {
      const route = b.http[i] as string
      http.account(route, route === CONTENT_ROUTE ? contentLabels : http.routeLabels(route), b.http[i + 1] as string,
        b.http[i + 2] as number, b.http[i + 3] as number, b.http[i + 4] === 1)
    }
    for (let i = 0; i < b.hits.length; i += 8) {
      const title = meta.cached(b.hits[i] as string)
      const rid = b.hits[i + 1] as string
      const file = title === undefined ? undefined : fileOf(title, rid === '' ? undefined : rid)
      const index = b.hits[i + 2] as number
      // only for the file version the thread served, not a newer one loaded since
      if (file !== undefined && index < file.chunks.length && chunkRef(file, index).key === b.hits[i + 5])
        reader.servedElsewhere(file, index, b.hits[i + 4] as number, b.hits[i + 3] as string, b.hits[i + 6] === 1, b.hits[i + 7] === 1 ? 'disk_hit' : 'ram_hit')
    }
    for (let i = 0; i < b.log.length; i += 7) {
      logger.info({ reqId: b.log[i], method: b.log[i + 1], url: logUrl(b.log[i + 2] as string), status: b.log[i + 3], ms: b.log[i + 4],
        finished: b.log[i + 5] === 1, remote: b.log[i + 6], thread: true }, 'request')
    }
    for (let i = 0; i < b.demand.length; i += 7) {
      const rid = b.demand[i + 2] === '' ? undefined : b.demand[i + 2] as string
      demand.request(b.demand[i] as string, b.demand[i + 1] as string, rid)
      demand.chunks(b.demand[i + 1] as string, b.demand[i + 4] as number, b.demand[i + 5] as number, b.demand[i + 6] as number, rid,
        b.demand[i + 3] as 'title' | 'video' | 'audio')
    }
  }
}
