import { Agent } from 'undici'
import type { PlayResponse } from '../player.js'
import { markFailed, sourceOrder, type Source } from '../source-choice.js'
import { PlaybackClock, type PlayState } from './clock.js'
import { AbrController, controllerDefaults, type AbrControllerOptions } from './controller.js'
import { fetchRange, fetchText, type Fetched } from './fetch.js'
import { openSources } from './hls-source.js'
import type { HlsPlayerOptions, Rung } from './hls-options.js'
import { parseMedia, pickAudio, PlaylistError, rebase, segmentAt, type ByteRange, type MasterPlaylist, type MediaPlaylist } from './playlist.js'
import { PLAYER_BACKOFF, PlayerServers } from './servers.js'
import { Wake } from './wake.js'

export type { FetchedSegment, HlsPlayerOptions, Rung } from './hls-options.js'

/**
 * An HLS player for adaptive titles (issue 15, docs/abr.md) that moves the
 * bytes a real one would, without decoding them: the master playlist from the
 * server client/abr/hls-source.ts chooses, a media playlist per rung when the
 * rung is first used, each rung's init segment once, then video and audio
 * segments as byte ranges of the rendition files, audio kept in step with
 * video (the track whose buffer ends sooner is fetched next), while less than
 * `maxBufferS` of media is buffered. One request at a time, as the ABR
 * rule's throughput samples assume.
 *
 * Theory of operation. The fetch loop (`run`) is the only writer of the
 * tracks and the buffer; the playback clock (client/abr/clock.ts) turns what
 * is buffered into what the viewer sees, in scenario time (wall time ×
 * `speed`, so a load test can play faster than real time, with the viewer's
 * link scaled alike). Before each video segment the ABR controller
 * (client/abr/controller.ts) names the rung and the server; during the
 * download it may give it up for a lower rung (abandon). A request that
 * fails is made again on the next server (client/abr/servers.ts: the next
 * edge, the origin last, back to the edge after its backoff); a failed
 * trial falls back to the current server. A seek bumps `gen` and
 * aborts the request in flight: whatever lands for an older generation is
 * dropped, and the tracks restart at the segment holding the new position.
 */

interface Track {
  type: 'video' | 'audio'
  next: number
  /** media seconds buffered to */
  end: number
}


export class HlsPlayer {
  readonly ladder: Rung[]
  readonly controller: AbrController<Source>
  readonly clock: PlaybackClock
  readonly servers: PlayerServers
  error: Error | undefined
  bytesReceived = 0
  bytesFromOrigin = 0
  /** video bytes received per rung, given-up downloads included (the load test's bytes per rung) */
  readonly rungBytes: number[]
  private readonly speed: number
  private readonly maxBufferS: number
  private closed = false
  private gen = 0
  private abort = new AbortController()
  private readonly wake = new Wake()
  private running: Promise<void> | undefined
  private readonly playlists = new Map<string, Promise<MediaPlaylist>>()
  private readonly inits = new Set<string>()
  private readonly video: Track = { type: 'video', next: 0, end: 0 }
  private readonly audio: Track | undefined

  private constructor(
    readonly master: MasterPlaylist,
    sources: Source[],
    private readonly timeline: MediaPlaylist,
    private readonly audioPlaylist: { uri: string; playlist: MediaPlaylist } | undefined,
    private readonly t0: number,
    private readonly o: Required<Omit<HlsPlayerOptions, 'link' | 'onSegment' | 'controller'>> & Pick<HlsPlayerOptions, 'link' | 'onSegment'>,
    controller: Partial<Omit<AbrControllerOptions, 'maxBufferS'>> | undefined,
  ) {
    this.speed = o.speed
    this.maxBufferS = o.maxBufferS
    this.servers = new PlayerServers(sources)
    this.ladder = master.variants.map(v => ({ name: v.uri.replace(/^.*\//, '').replace(/\.m3u8$/, ''), variant: v }))
    this.rungBytes = this.ladder.map(() => 0)
    this.controller = new AbrController(this.ladder.map(r => r.variant.bandwidth), { ...controllerDefaults(o.maxBufferS), ...controller, maxBufferS: o.maxBufferS })
    this.clock = new PlaybackClock({ startupS: o.startupS, durationS: timeline.duration }, 0)
    if (audioPlaylist) this.audio = { type: 'audio', next: 0, end: 0 }
    this.playlists.set(master.variants[0]!.uri, Promise.resolve(timeline))
  }

  /** the server played from (client/abr/servers.ts), every server in failover order, requests made again elsewhere */
  get current(): Source {
    return this.servers.current
  }

  get sources(): readonly Source[] {
    return this.servers.sources
  }

  get failovers(): number {
    return this.servers.failovers
  }

  /** Chooses a server (the probe is its master playlist), reads the ladder, and loads the lowest rung's and the audio playlists. */
  static async open(play: PlayResponse, options: HlsPlayerOptions = {}): Promise<HlsPlayer> {
    const o = { timeoutMs: 10_000, probeBudgetMs: 1000, speed: 1, startupS: 2, maxBufferS: 30, maxAttempts: 8, ...options,
      dispatcher: options.dispatcher ?? sharedAgent() }
    if (!(o.speed > 0)) throw new RangeError(`expected a speed above 0, got ${o.speed}`)
    if (!(o.maxBufferS > o.startupS)) throw new RangeError(`expected maxBufferS (${o.maxBufferS}) above startupS (${o.startupS})`)
    const t0 = performance.now()
    const late: Source[] = []
    let player: HlsPlayer | undefined
    const { master, sources, settled } = await openSources(play, o, s => {
      if (player) player.servers.add(s)
      else late.push(s)
    })
    const first = master.variants[0]!
    const audio = pickAudio(master)
    const fetchOpts = { dispatcher: o.dispatcher, timeoutMs: o.timeoutMs, link: o.link }
    // the lowest rung's and the audio playlists, from the first server that answers both (as requests fail over in play)
    let loaded: [MediaPlaylist, MediaPlaylist | undefined] | undefined
    let lastError: unknown
    const failed: Source[] = []
    const candidates = [...sources]
    let waited = false
    for (let i = 0; ; i++) {
      if (i === candidates.length) {
        // the chosen server failed: the others whose master answered so far, in failover order; then, if need be,
        // those still probing (the wait is theirs: at most timeoutMs)
        const fresh = () => late.filter(x => !candidates.includes(x))
        if (fresh().length === 0 && !waited) {
          waited = true
          await settled
        }
        candidates.push(...fresh().sort(sourceOrder(performance.now())))
      }
      const s = candidates[i]
      if (s === undefined) break
      const load = async (uri: string) => parseMedia(await fetchText(rebase(s.url, uri), fetchOpts), rebase(s.url, uri))
      try {
        loaded = await Promise.all([load(first.uri), audio ? load(audio) : undefined])
        break
      } catch (err) {
        lastError = err
        markFailed(s, performance.now(), PLAYER_BACKOFF)
        failed.push(s)
      }
    }
    if (loaded === undefined) throw lastError
    const [timeline, audioPl] = loaded
    for (const p of [timeline, audioPl]) if (p && !p.endList) throw new PlaylistError(p.url, 'a live playlist (no EXT-X-ENDLIST): only VOD titles are played')
    player = new HlsPlayer(master, [...sources, ...late], timeline, audio && audioPl ? { uri: audio, playlist: audioPl } : undefined, t0, o, options.controller)
    if (failed.length > 0) player.servers.openedAfter(failed[0]!, failed.length - 1)
    return player
  }

  /** Scenario seconds since open() began. */
  nowS(): number {
    return ((performance.now() - this.t0) / 1000) * this.speed
  }

  /** What the viewer sees now: starting, playing, stalled, seeking, ended. */
  get state(): PlayState {
    this.clock.advance(this.nowS())
    return this.clock.state
  }

  /** The bitrate (BANDWIDTH) of the rung on screen, or undefined when none is. */
  playingBandwidth(): number | undefined {
    const r = this.clock.rungAt(this.nowS())
    return r === undefined || this.clock.state !== 'playing' ? undefined : this.ladder[r]!.variant.bandwidth
  }

  /** Starts fetching; `done` resolves when the loop ends (closed, or an error in `error`). */
  start(): void {
    this.running ??= this.run()
  }

  get done(): Promise<void> {
    return this.running ?? Promise.resolve()
  }

  /** Moves the play position (media seconds): the buffer is dropped and refilled from the segment holding it. */
  seek(toS: number): void {
    if (!(toS >= 0 && toS < this.timeline.duration)) throw new RangeError(`seek to ${toS} s is outside 0-${this.timeline.duration} s`)
    this.gen++
    this.abort.abort()
    this.abort = new AbortController()
    this.clock.seek(toS, this.nowS())
    this.video.next = segmentAt(this.timeline, toS)
    this.video.end = toS
    if (this.audio) {
      this.audio.next = segmentAt(this.audioPlaylist!.playlist, toS)
      this.audio.end = toS
    }
    this.controller.seeked()
    this.wake.notify()
  }

  async close(): Promise<void> {
    this.closed = true
    this.abort.abort()
    this.wake.notify()
    await this.running
    this.clock.finish(this.nowS())
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const gen = this.gen
      try {
        const wait = await this.step(gen)
        if (wait !== 0) await this.wake.wait(wait)
      } catch (err) {
        if (this.closed) break
        if (gen !== this.gen) continue // a seek aborted it
        this.error = err as Error
        break
      }
    }
  }

  /** Fetches the next segment and returns 0, or how long to wait (ms; undefined: until a seek or close). */
  private async step(gen: number): Promise<number | undefined> {
    const v = this.video
    const a = this.audio
    const vDone = v.next >= this.timeline.segments.length
    const aDone = !a || a.next >= this.audioPlaylist!.playlist.segments.length
    if (vDone && aDone) return undefined
    const level = this.clock.level(this.nowS())
    if (level >= this.maxBufferS) return ((level - this.maxBufferS) / this.speed) * 1000 + 5
    if (a && !aDone && (vDone || a.end < v.end)) await this.audioSegment(a, gen)
    else await this.videoSegment(v, gen)
    return 0
  }

  private async videoSegment(v: Track, gen: number): Promise<void> {
    const i = v.next
    const ref = this.timeline.segments[i]!
    if (this.servers.returnFromFailover()) this.controller.failedOver()
    const now = this.nowS()
    const d = this.controller.next({ now, bufferS: this.clock.level(now), segmentS: ref.duration, playing: this.clock.state === 'playing',
      current: this.current, others: this.servers.others() })
    if (d.switched) this.servers.switchedTo(d.server)
    let rung = d.rung
    for (;;) {
      const variant = this.ladder[rung]!.variant
      const pl = await this.mediaPlaylist(variant.uri)
      if (pl.segments.length !== this.timeline.segments.length)
        throw new PlaylistError(pl.url, `${pl.segments.length} segments where the lowest rung has ${this.timeline.segments.length}: the rungs are not aligned`)
      await this.init('video', variant.uri, rung, pl, gen)
      const seg = pl.segments[i]!
      let to: number | undefined
      // a trial goes to its server; otherwise the current one, which a failover while fetching a playlist or the init may have moved
      const r = await this.get(d.trial ? d.server : this.current, s => rebase(s.url, variant.uri, seg.uri), seg.range, gen, (loaded, ms) => {
        if (seg.range.length === undefined) return false
        const nowS = this.nowS()
        to = this.controller.abandon({ elapsedS: (ms / 1000) * this.speed, loadedBytes: loaded, totalBytes: seg.range.length,
          bufferS: this.clock.level(nowS), segmentS: seg.duration, playing: this.clock.state === 'playing' })
        return to !== undefined
      })
      this.rungBytes[rung]! += r.loaded
      if (gen !== this.gen) return
      this.controller.sample(r.server, r.loaded, (r.ms / 1000) * this.speed, this.nowS(), true)
      if (r.abandoned && to !== undefined) { rung = to; continue }
      this.o.onSegment?.({ track: 'video', kind: 'media', playlist: variant.uri, rung, index: i, url: r.url, range: seg.range, bytes: r.body, server: r.server, trial: d.trial })
      this.clock.mark(ref.start, ref.start + ref.duration, rung)
      v.end = ref.start + ref.duration
      v.next++
      this.buffered()
      return
    }
  }

  private async audioSegment(a: Track, gen: number): Promise<void> {
    const { uri, playlist } = this.audioPlaylist!
    await this.init('audio', uri, undefined, playlist, gen)
    const seg = playlist.segments[a.next]!
    const r = await this.get(this.current, s => rebase(s.url, uri, seg.uri), seg.range, gen)
    if (gen !== this.gen) return
    this.controller.sample(r.server, r.loaded, (r.ms / 1000) * this.speed, this.nowS(), false)
    this.o.onSegment?.({ track: 'audio', kind: 'media', playlist: uri, rung: undefined, index: a.next, url: r.url, range: seg.range, bytes: r.body, server: r.server, trial: false })
    a.end = seg.start + seg.duration
    a.next++
    this.buffered()
  }

  /** The buffer ends where the track that is behind ends (a finished track is no limit). */
  private buffered(): void {
    const vEnd = this.video.next >= this.timeline.segments.length ? Infinity : this.video.end
    const aEnd = !this.audio || this.audio.next >= this.audioPlaylist!.playlist.segments.length ? Infinity : this.audio.end
    const end = Math.min(vEnd, aEnd)
    this.clock.buffered(end === Infinity ? this.timeline.duration : end, this.nowS())
  }

  private async init(track: 'video' | 'audio', uri: string, rung: number | undefined, pl: MediaPlaylist, gen: number): Promise<void> {
    if (!pl.init || this.inits.has(uri)) return
    const init = pl.init
    const r = await this.get(this.current, s => rebase(s.url, uri, init.uri), init.range, gen)
    if (gen !== this.gen) return
    this.inits.add(uri)
    this.o.onSegment?.({ track, kind: 'init', playlist: uri, rung, index: -1, url: r.url, range: init.range, bytes: r.body, server: r.server, trial: false })
  }

  private mediaPlaylist(uri: string): Promise<MediaPlaylist> {
    let p = this.playlists.get(uri)
    if (!p) {
      p = this.get(this.current, s => rebase(s.url, uri), undefined, this.gen, undefined, true)
        .then(r => parseMedia(r.body.toString('utf8'), r.url))
      p.catch(() => this.playlists.delete(uri))
      this.playlists.set(uri, p)
    }
    return p
  }

  /** One GET from `from`, made again on the current server after a failure (client/abr/servers.ts; a failed trial falls back to it). */
  private async get(from: Source, urlFor: (s: Source) => string, range: ByteRange | undefined, gen: number,
    onProgress?: (loaded: number, ms: number) => boolean, keep = false): Promise<Fetched & { server: Source; url: string }> {
    let src = from
    for (let attempt = 0; ; attempt++) {
      const url = urlFor(src)
      const origin = src.kind === 'origin'
      try {
        const r = await fetchRange(url, range, { dispatcher: this.o.dispatcher, timeoutMs: this.o.timeoutMs, link: this.o.link, signal: this.abort.signal,
          keep: keep || this.o.onSegment !== undefined, onProgress,
          onBytes: n => { this.bytesReceived += n; if (origin) this.bytesFromOrigin += n } })
        this.servers.served(src)
        return { ...r, server: src, url }
      } catch (err) {
        if (this.closed || gen !== this.gen || attempt + 1 >= this.o.maxAttempts) throw err
        if (this.servers.failed(src)) this.controller.failedOver()
        src = this.current
      }
    }
  }
}


let agent: Agent | undefined
function sharedAgent(): Agent {
  agent ??= new Agent({ connections: 8, keepAliveTimeout: 10_000 })
  return agent
}
