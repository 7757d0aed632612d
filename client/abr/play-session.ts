import { request, type Dispatcher } from 'undici'
import { manifestSchema } from '../../lib/manifest.js'
import type { PlayResponse } from '../player.js'
import { TokenBucket } from '../token-bucket.js'
import { HlsPlayer, type FetchedSegment, type HlsPlayerOptions } from './hls-player.js'
import { masterUrl } from './hls-source.js'
import { ChunkVerifier, type VerifyCounts } from './verify.js'

/**
 * One viewing of an adaptive title, start to finish, and what the viewer got:
 * what `reelcdn play` prints and each viewer of `reelcdn loadtest players`
 * returns. It opens the HLS player (client/abr/hls-player.ts) on a /v1/play
 * answer, plays until the title ends, the viewer has watched `watchS` of
 * media, `wallMs` has passed or `signal` aborts, and sums up: start-up,
 * stalls, time and bytes per rung, rung and server switches, bytes from the
 * origin URL.
 *
 * With `verify`, it first reads the title's manifest (`/v1/content/{id}/meta`
 * at the chosen server's origin, with the play token as a query, since the
 * meta route is not under the token path) and checks every chunk of a
 * rendition file the player fetched whole against its SHA-256
 * (client/abr/verify.ts). A manifest it cannot read leaves the bytes
 * unverified and says why; it never fails the playback.
 *
 * Times are scenario seconds (wall × `speed`), which at speed 1 are seconds.
 */
export interface SessionOptions extends Omit<HlsPlayerOptions, 'link' | 'onSegment'> {
  /** the viewer's link in bits per second of scenario time; unset: unpaced */
  linkBps?: number
  /** media seconds to watch, then leave (default: the whole title) */
  watchS?: number
  /** wall-clock bound, ms (default: none) */
  wallMs?: number
  signal?: AbortSignal
  /** polled with the signal: true ends the session (a load test's end) */
  stopped?: () => boolean
  /** the player, once open (a load test counts its bytes as they come) */
  onOpen?: (p: HlsPlayer) => void
  verify?: boolean
  /** how often the session looks at the player, wall ms (50) */
  pollMs?: number
}

export interface RungReport {
  name: string
  bandwidth: number
  height: number | undefined
  /** seconds on screen */
  seconds: number
  bytes: number
}

export interface SessionReport {
  contentId: string
  /** the server played from at the start and at the end (the master playlist's URL) */
  firstServer: string
  lastServer: string
  startupS: number | undefined
  playedS: number
  durationS: number
  ended: boolean
  stalls: number
  stallS: number
  /** each stall's length, seconds */
  stallTimesS: number[]
  rungs: RungReport[]
  /** the rung of each video segment played, in play order */
  rungsPlayed: number[]
  /** changes of rung between consecutive segments played */
  rungSwitches: number
  /** server switches for quality, trial segments, failovers after errors */
  serverSwitches: number
  trials: number
  failovers: number
  abandons: number
  bytesReceived: number
  bytesFromOrigin: number
  /** bits per second of the rungs on screen, averaged over the time played (BANDWIDTH, audio included) */
  averageBps: number
  verify?: VerifyCounts & { skipped?: string }
  error?: string
}

/** Where a title's manifest is, next to its master playlist: `{origin}/v1/content/{id}/meta`, with the token as a query. */
export function metaUrl(master: string, contentId: string, token: string | undefined): string {
  const u = new URL(`/v1/content/${encodeURIComponent(contentId)}/meta`, master)
  if (token) u.searchParams.set('token', token)
  return u.toString()
}

async function loadVerifier(play: PlayResponse, dispatcher: Dispatcher | undefined, timeoutMs: number): Promise<ChunkVerifier | string> {
  const first = play.urls.map(masterUrl).find(u => u !== undefined)
  if (!first) return 'no master playlist URL'
  const url = metaUrl(first, play.contentId, play.token)
  try {
    const res = await request(url, { ...(dispatcher ? { dispatcher } : {}), headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
    if (res.statusCode !== 200) {
      await res.body.dump()
      return `${new URL(url).pathname} answered ${res.statusCode}`
    }
    const man = manifestSchema.safeParse(await res.body.json())
    if (!man.success) return `${new URL(url).pathname} is not a manifest: ${man.error.issues[0]?.message ?? 'invalid'}`
    if (!man.data.renditions?.length) return 'the manifest lists no renditions'
    return new ChunkVerifier(man.data.renditions, man.data.chunkSize)
  } catch (err) {
    return `${new URL(url).pathname}: ${(err as Error).message}`
  }
}

export async function playSession(play: PlayResponse, o: SessionOptions = {}): Promise<SessionReport> {
  const speed = o.speed ?? 1
  const verifier = o.verify ? await loadVerifier(play, o.dispatcher, o.timeoutMs ?? 10_000) : undefined
  const onSegment = verifier instanceof ChunkVerifier
    ? (s: FetchedSegment) => verifier.add(s.url.replace(/^.*\//, '').replace(/\.mp4$/, ''), s.range.offset, s.bytes)
    : undefined
  const link = o.linkBps !== undefined ? TokenBucket.ofLink(o.linkBps, speed) : undefined
  const p = await HlsPlayer.open(play, { ...o, ...(link ? { link } : {}), ...(onSegment ? { onSegment } : {}) })
  const first = p.current.url
  o.onOpen?.(p)
  p.start()
  const t0 = performance.now()
  const watchS = o.watchS ?? Infinity
  const poll = o.pollMs ?? 50
  try {
    while (p.state !== 'ended' && !p.error && !o.signal?.aborted && !o.stopped?.() && p.clock.playedS < watchS && performance.now() - t0 < (o.wallMs ?? Infinity)) {
      p.clock.advance(p.nowS())
      await new Promise(r => setTimeout(r, poll))
    }
  } finally {
    await p.close()
  }
  return report(play.contentId, p, first, verifier)
}

function report(contentId: string, p: HlsPlayer, first: string, verifier: ChunkVerifier | string | undefined): SessionReport {
  const c = p.clock
  const rungs = p.ladder.map((r, i) => ({ name: r.name, bandwidth: r.variant.bandwidth, height: r.variant.height, seconds: c.rungSeconds.get(i) ?? 0, bytes: p.rungBytes[i]! }))
  const shown = rungs.reduce((a, r) => a + r.seconds, 0)
  const played = c.playedRungs
  return {
    contentId, firstServer: first, lastServer: p.current.url,
    startupS: c.startupS, playedS: c.playedS, durationS: c.durationS, ended: c.state === 'ended',
    stalls: c.stalls.length, stallS: c.stalls.reduce((a, b) => a + b, 0), stallTimesS: [...c.stalls],
    rungs, rungsPlayed: [...played], rungSwitches: played.filter((r, i) => i > 0 && r !== played[i - 1]).length,
    serverSwitches: p.controller.serverSwitches, trials: p.controller.trials, failovers: p.failovers, abandons: p.controller.abandons,
    bytesReceived: p.bytesReceived, bytesFromOrigin: p.bytesFromOrigin,
    averageBps: shown > 0 ? rungs.reduce((a, r) => a + r.bandwidth * r.seconds, 0) / shown : 0,
    ...(verifier === undefined ? {} : { verify: typeof verifier === 'string'
      ? { chunksOk: 0, chunksBad: 0, bytesVerified: 0, bytesUnverified: p.bytesReceived, errors: [], skipped: verifier }
      : verifier.finish() }),
    ...(p.error ? { error: p.error.message } : {}),
  }
}
