import { Agent, request, type Dispatcher } from 'undici'
import { CdnError, UpstreamError, UpstreamTimeoutError } from '../lib/errors.js'
import { PositionReporter } from './position-reporter.js'
import { chooseSource, markFailed, markServed, probe, sourceOrder, type Source } from './source-choice.js'

/**
 * The player's side of a playback: given the ranked URLs from `/v1/play`, it
 * probes them, reads from the best, and fails over to the next in the middle
 * of a read, resuming at the byte already received, so the caller sees
 * neither an error nor a wrong byte while any URL still serves the title.
 * Every request after the first carries `If-Range` with the ETag learnt at
 * open, so bytes of two different versions are never stitched together.
 *
 * Which URL (client/source-choice.ts has the rule): the origin URL /v1/play
 * lists last is the last resort. Every URL is probed at once with a HEAD (no
 * body: a probe starts no fill on an edge and counts as no player read); the
 * first edge in /v1/play order whose probe answers well (200 with a size)
 * within `probeBudgetMs` is used, however fast the origin answered; the
 * origin only when no edge answered within the budget, and then only until
 * one does (a late edge answer goes in front of the origin). A read that
 * fails marks its source down for a backoff (`failureBackoffMs`, doubled for
 * each failure in a row up to `maxFailureBackoffMs`), behind every working
 * one, so failover goes to the next edge before the origin; once the backoff
 * has passed the source is tried again in its place, and a read it serves
 * clears its failures, so a player is back on its edge after one failure.
 *
 * Playback state: when the play answer names a `sessionUrl` and a `token`
 * (what the router's /v1/play gives), the client reports `position` there every
 * `reportIntervalMs` while open (client/position-reporter.ts) and stops at
 * `close()`. The position is the play position, not the read position: the
 * sequential reader moves it as its consumer takes bytes; an app reading
 * with `read()` directly calls `setPosition()` as it plays.
 */
export interface PlayUrl {
  url: string
  kind?: 'edge' | 'origin'
  id?: string
  /** an adaptive title's HLS master playlist and DASH MPD at this URL's server (docs/abr.md); played with client/abr/hls-player.ts */
  hls?: string
  dash?: string
}

export interface PlayResponse {
  contentId: string
  urls: PlayUrl[]
  /** the play token, for position reports */
  token?: string
  /** where position reports go: the router's PUT /v1/sessions/{contentId} */
  sessionUrl?: string
}

export interface PlayerOptions {
  /** per request: time to response headers, and the longest pause between body bytes */
  timeoutMs?: number
  dispatcher?: Dispatcher
  /** how many failovers one read may take before it gives up */
  maxAttempts?: number
  /** time between position reports while open; 0 sends none (default 10 s) */
  reportIntervalMs?: number
  /** how long an edge may take to answer its probe and still be chosen over the origin (default 1 s) */
  probeBudgetMs?: number
  /** how long a source whose read failed is passed over, doubled for each failure in a row (default 2 s) */
  failureBackoffMs?: number
  /** the longest a source is passed over, however often it failed (default 30 s) */
  maxFailureBackoffMs?: number
  /** the clock backoffs are measured on, ms (default performance.now; tests move it by hand) */
  clock?: () => number
}

export class ContentChangedError extends CdnError {
  override name = 'ContentChangedError'
  constructor(url: string) {
    super(`${url} serves a different version of the title than the one being played`, {
      code: 'CDN_ERR_CONTENT_CHANGED', statusCode: 409, source: 'upstream' })
  }
}

export class PlayerClient {
  /** sources in the order reads use them (sourceOrder): the first is read from */
  readonly sources: Source[]
  failovers = 0
  /** bytes returned by read() */
  bytesRead = 0
  /** body bytes received from the network, partial reads that failed over included */
  bytesReceived = 0
  /** of bytesReceived, those from a URL /v1/play marked `origin` */
  bytesFromOrigin = 0
  /** the play position (byte offset) position reports carry */
  position = 0
  /** undefined when the play answer had no session URL or reports are off */
  readonly reporter: PositionReporter | undefined

  private constructor(
    readonly contentId: string,
    readonly size: number,
    readonly etag: string,
    sources: Source[],
    private readonly opts: Required<Omit<PlayerOptions, 'dispatcher'>> & { dispatcher: Dispatcher },
    session: { url: string; token: string } | undefined,
  ) {
    this.sources = sources
    this.reporter = session && opts.reportIntervalMs > 0
      ? new PositionReporter({ ...session, intervalMs: opts.reportIntervalMs, timeoutMs: opts.timeoutMs, dispatcher: opts.dispatcher, position: () => this.position })
      : undefined
    this.reporter?.start()
  }

  /** Moves the play position position reports carry. */
  setPosition(offset: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset > this.size) throw new RangeError(`position ${offset} is outside 0-${this.size}`)
    this.position = offset
  }

  /** Stops position reports, sending the last position if it moved. Reads still work: the client holds no connection of its own. */
  async close(): Promise<void> {
    await this.reporter?.close()
  }

  /** Probes every URL (a HEAD each, at once) and opens the title on the one the rule in client/source-choice.ts picks. */
  static async open(play: PlayResponse, options: PlayerOptions = {}): Promise<PlayerClient> {
    const opts = { timeoutMs: 10_000, maxAttempts: 8, reportIntervalMs: 10_000, probeBudgetMs: 1000, failureBackoffMs: 2000, maxFailureBackoffMs: 30_000,
      clock: () => performance.now(), ...options, dispatcher: options.dispatcher ?? sharedAgent() }
    for (const k of ['failureBackoffMs', 'maxFailureBackoffMs'] as const) {
      if (!Number.isFinite(opts[k]) || opts[k] < 0) throw new RangeError(`expected ${k} to be a non-negative number of ms, got ${opts[k]}`)
    }
    if (play.urls.length === 0) throw new UpstreamError(`no URL to play ${play.contentId} from`)
    const t0 = performance.now()
    const probes = play.urls.map((u, rank) => probe(u.url, opts).then(p => p && { ...p,
      source: { url: u.url, kind: u.kind ?? 'edge', rank, rtt: performance.now() - t0, failures: 0, downUntil: 0 } satisfies Source }))
    const chosen = await chooseSource(probes.map((p, rank) => ({ kind: play.urls[rank]!.kind ?? 'edge', answer: p })), opts.probeBudgetMs)
    if (chosen === undefined) throw new UpstreamError(`none of the ${play.urls.length} URLs for ${play.contentId} answered a HEAD with the title's size`)
    const session = play.sessionUrl !== undefined && play.token !== undefined ? { url: play.sessionUrl, token: play.token } : undefined
    const client = new PlayerClient(play.contentId, chosen.size, chosen.etag, [chosen.source], opts, session)
    // the others take part once their probe has answered for the same version, each in its place in the order
    for (const p of probes) void p.then(a => {
      if (a === undefined || a === chosen || a.etag !== chosen.etag || a.size !== chosen.size) return
      client.sources.push(a.source)
      client.sources.sort(sourceOrder(opts.clock()))
    })
    return client
  }

  /** Reads `length` bytes at `offset` (fewer at the end of the title). */
  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(this.size, offset + length)
    if (offset < 0 || offset > this.size) throw new RangeError(`offset ${offset} is outside 0-${this.size}`)
    const out = Buffer.allocUnsafe(end - offset)
    await this.readInto(offset, out)
    return out
  }

  /**
   * Reads `out.length` bytes at `offset` into `out`, memory the caller keeps
   * (a player's buffer: SequentialReader lands bytes in its ring this way, with
   * no Buffer and no copy per read). The range must lie within the title. On
   * failure `out` may hold part of the range.
   */
  async readInto(offset: number, out: Buffer): Promise<void> {
    return this.readRange(offset, out.length, out)
  }

  /**
   * Reads `length` bytes at `offset` and keeps none of them, counting them as
   * read: a load generator's player, which needs the server's load and the
   * timing, not the bytes (its 200 players' buffers were gigabytes of fresh
   * memory to fault in, and a copy per byte).
   */
  async discard(offset: number, length: number): Promise<void> {
    return this.readRange(offset, length, undefined)
  }

  private async readRange(offset: number, length: number, out: Buffer | undefined): Promise<void> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || length < 0)
      throw new RangeError(`expected a byte offset and a length, whole numbers, the length not negative; got ${offset} and ${length}`)
    const end = offset + length
    if (offset < 0 || end > this.size) throw new RangeError(`bytes ${offset}-${end - 1} are outside 0-${this.size - 1}`)
    let got = 0
    let attempts = 0
    let lastErr: unknown
    while (offset + got < end) {
      if (attempts++ >= this.opts.maxAttempts) throw lastErr instanceof Error ? lastErr : new UpstreamError(String(lastErr))
      // in order at this moment: a source whose backoff has passed is back in its place
      this.sources.sort(sourceOrder(this.opts.clock()))
      const src = this.sources[0]!
      const progress = { n: 0 }
      try {
        await this.fetchInto(src, offset + got, end - 1, out, got, progress)
        got += progress.n
        markServed(src)
      } catch (err) {
        got += progress.n
        if (err instanceof ContentChangedError) throw err
        lastErr = err
        // the source failed: down for its backoff, behind every working one (the next edge before the origin); we resume there where we stopped
        markFailed(src, this.opts.clock(), { baseMs: this.opts.failureBackoffMs, maxMs: this.opts.maxFailureBackoffMs })
        this.failovers++
      }
    }
    this.bytesRead += length
  }

  /** Streams [from, to] from one source into `out` at `at` (or nowhere: `discard`), counting bytes in `progress` as they land. */
  private async fetchInto(src: Source, from: number, to: number, out: Buffer | undefined, at: number, progress: { n: number }): Promise<void> {
    const want = to - from + 1
    const url = src.url
    const origin = src.kind === 'origin'
    try {
      const res = await request(url, {
        method: 'GET', dispatcher: this.opts.dispatcher, headersTimeout: this.opts.timeoutMs, bodyTimeout: this.opts.timeoutMs,
        headers: { range: `bytes=${from}-${to}`, 'if-range': this.etag },
      })
      if (res.statusCode === 200) {
        await res.body.dump()
        throw new ContentChangedError(url)
      }
      if (res.statusCode !== 206) {
        await res.body.dump()
        throw new UpstreamError(`${url} answered ${res.statusCode} to a range request`)
      }
      for await (const piece of res.body as AsyncIterable<Buffer>) {
        this.bytesReceived += piece.length
        if (origin) this.bytesFromOrigin += piece.length
        const take = Math.min(piece.length, want - progress.n)
        if (out !== undefined) piece.copy(out, at + progress.n, 0, take)
        progress.n += take
      }
      if (progress.n !== want) throw new UpstreamError(`${url} ended the body after ${progress.n} of ${want} bytes`)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') throw new UpstreamTimeoutError(url, { cause: err })
      throw err
    }
  }
}

let agent: Agent | undefined
function sharedAgent(): Agent {
  agent ??= new Agent({ connections: 8, keepAliveTimeout: 10_000 })
  return agent
}
