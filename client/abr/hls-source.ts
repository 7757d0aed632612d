import type { Dispatcher } from 'undici'
import { UpstreamError } from '../../lib/errors.js'
import type { PlayResponse } from '../player.js'
import { chooseSource, type Source } from '../source-choice.js'
import type { TokenBucket } from '../token-bucket.js'
import { fetchText } from './fetch.js'
import { parseMaster, PlaylistError, type MasterPlaylist } from './playlist.js'

/**
 * Where an adaptive title is played from: the /v1/play answer's URLs whose
 * `hls` is a master playlist (docs/abr.md), chosen by the player client's rule
 * (client/source-choice.ts): every master is fetched at once (the probe: a
 * playlist is a few hundred bytes, generated from the manifest, and starts no
 * chunk fill on an edge), and the first edge in /v1/play order that answers
 * within the budget is used, the origin only when no edge answered. The
 * others join once their master has answered with the same text (the router
 * and the edges answer byte-identical playlists from one manifest), each in
 * its place in the failover order.
 */
export class NotAdaptiveError extends PlaylistError {
  override name = 'NotAdaptiveError'
  constructor(contentId: string) {
    super(`/v1/play/${contentId}`, 'names no HLS master playlist (no `hls` URL): a single-file title is played with client/player.ts')
  }
}

/** A /v1/play URL's master playlist: `hls`, or the URL itself when it names one. */
export function masterUrl(u: PlayResponse['urls'][number]): string | undefined {
  if (u.hls) return u.hls
  try {
    return new URL(u.url).pathname.endsWith('.m3u8') ? u.url : undefined
  } catch {
    return undefined
  }
}

export interface OpenedSources {
  master: MasterPlaylist
  /** the chosen source first; late ones are pushed as their probes answer */
  sources: Source[]
  chosen: Source
  /** resolves once every probe has settled: every late source has been pushed by then (for a failover before play starts) */
  settled: Promise<void>
}

export async function openSources(play: PlayResponse, o: { dispatcher: Dispatcher; timeoutMs: number; probeBudgetMs: number; link?: TokenBucket | undefined; signal?: AbortSignal | undefined },
  onLate: (s: Source) => void): Promise<OpenedSources> {
  const urls = play.urls.map(u => ({ u, master: masterUrl(u) })).filter(x => x.master !== undefined)
  if (urls.length === 0) throw new NotAdaptiveError(play.contentId)
  const t0 = performance.now()
  const probes = urls.map(({ u, master }, rank) => fetchText(master!, o).then(
    text => ({ text, source: { url: master!, kind: u.kind ?? 'edge', rank, rtt: performance.now() - t0, failures: 0, downUntil: 0 } satisfies Source }),
    () => undefined))
  const chosen = await chooseSource(probes.map((p, i) => ({ kind: urls[i]!.u.kind ?? 'edge', answer: p })), o.probeBudgetMs)
  if (chosen === undefined) throw new UpstreamError(`none of the ${urls.length} master playlists for ${play.contentId} answered`)
  const master = parseMaster(chosen.text, chosen.source.url)
  for (const p of probes) void p.then(a => {
    if (a !== undefined && a !== chosen && a.text === chosen.text) onLate(a.source)
  })
  return { master, sources: [chosen.source], chosen: chosen.source, settled: Promise.all(probes).then(() => {}) }
}
