import type { Dispatcher } from 'undici'
import { playSession, type SessionReport } from '../../client/abr/play-session.js'
import type { PlayResponse } from '../../client/player.js'
import { mulberry32 } from './random.js'
import type { Scenario } from './audience.js'

/**
 * The adaptive viewers of `reelcdn loadtest players` (issue 15): a viewer of
 * a title whose /v1/play answer names HLS masters is an ABR player
 * (client/abr/play-session.ts) behind a link of its own, drawn from the link
 * mix (`--links`), its reads paced to it at the run's speed. What it reports
 * is summed here: time share and bytes per rung, rung switches per viewer
 * and per minute, server switches, average bitrate played.
 *
 * A viewer's link is drawn from a random stream of its own (from the seed
 * and its index), so adding the mix changes no single-file viewer's plan.
 * Times (start-up, stalls, time watched) are scenario seconds: the link and
 * the play clock are both scaled by the speed, so they are what a viewer at
 * real time would see, whatever `--speed`.
 */
export interface LinkShare {
  /** bits per second */
  bps: number
  weight: number
}

/** a mix of DSL, average and fast home links, and fibre */
export const DEFAULT_LINKS: LinkShare[] = [{ bps: 1.5e6, weight: 1 }, { bps: 4e6, weight: 1 }, { bps: 8e6, weight: 1 }, { bps: 25e6, weight: 1 }]

/** `1.5:1,4:2,25` (Mb/s, optional weight, default 1) → link shares; a clear error naming the bad entry. */
export function parseLinks(v: string): LinkShare[] {
  const out = v.split(',').map(x => x.trim()).filter(Boolean).map(x => {
    const m = /^([0-9]+(?:\.[0-9]+)?)(?::([0-9]+(?:\.[0-9]+)?))?$/.exec(x)
    const bps = m ? Number(m[1]) * 1e6 : NaN
    const weight = m?.[2] === undefined ? 1 : Number(m[2])
    if (!m || !(bps > 0) || !(weight > 0)) throw new RangeError(`link ${JSON.stringify(x)}: expected Mb/s above 0, optionally :weight above 0 (e.g. 1.5:2)`)
    return { bps, weight }
  })
  if (out.length === 0) throw new RangeError('expected at least one link, e.g. 1.5,4,8,25')
  return out
}

export function drawLink(links: readonly LinkShare[], seed: number, i: number): number {
  const u = mulberry32((seed * 7919 + i) ^ 0x2545f491)() * links.reduce((a, l) => a + l.weight, 0)
  let acc = 0
  for (const l of links) if (u < (acc += l.weight)) return l.bps
  return links[links.length - 1]!.bps
}

/** Whether a /v1/play answer is for an adaptive title. */
export const isAdaptivePlay = (p: PlayResponse) => p.urls.some(u => u.hls !== undefined)

export interface AbrViewer {
  linkBps: number
  report: SessionReport
}

export function abrViewer(play: PlayResponse, o: { scenario: Scenario; speed: number; linkBps: number; watchS: number; dispatcher: Dispatcher;
  stopped: () => boolean; onOpen: (p: { bytesReceived: number }) => void }): Promise<AbrViewer> {
  return playSession(play, { dispatcher: o.dispatcher, speed: o.speed, linkBps: o.linkBps, watchS: o.watchS, stopped: o.stopped, onOpen: o.onOpen,
    startupS: o.scenario.startupS, maxBufferS: Math.max(o.scenario.bufferS, o.scenario.startupS + 4) })
    .then(report => ({ linkBps: o.linkBps, report }))
}

export interface AbrFigures {
  viewers: number
  /** link bits/s → viewers */
  links: Record<string, number>
  /** BANDWIDTH of the rungs on screen, averaged over all time played */
  averageBps: number
  rungs: { name: string; bandwidth: number; seconds: number; share: number; bytes: number }[]
  rungSwitchesPerViewer: number
  rungSwitchesPerMinute: number
  serverSwitches: number
  trials: number
  abandons: number
  /** seconds of media played, over all viewers */
  playedS: number
  /** the mean over viewers of qoeLinear: one figure that weighs bitrate against switches and stalls */
  qoe: number
}

/**
 * QoE_lin of MPC and Pensieve (Yin et al., "A Control-Theoretic Approach for
 * Dynamic Adaptive Video Streaming over HTTP", SIGCOMM 2015; Mao et al.,
 * "Neural Adaptive Video Streaming with Pensieve", SIGCOMM 2017), per segment
 * played: the bitrate in Mb/s, less each change of bitrate in Mb/s, less
 * 4.3 per second of stall (the bitrate of the top rung in their ladder:
 * a second of stall costs a segment at the top). Start-up is reported apart.
 */
export function qoeLinear(r: Pick<SessionReport, 'rungsPlayed' | 'rungs' | 'stallS'>): number {
  const q = r.rungsPlayed.map(i => (r.rungs[i]?.bandwidth ?? 0) / 1e6)
  if (q.length === 0) return 0
  let sum = 0
  for (let k = 0; k < q.length; k++) sum += q[k]! - (k > 0 ? Math.abs(q[k]! - q[k - 1]!) : 0)
  return (sum - 4.3 * r.stallS) / q.length
}

export function abrFigures(viewers: readonly AbrViewer[]): AbrFigures {
  const rungs = new Map<string, { name: string; bandwidth: number; seconds: number; bytes: number }>()
  const links: Record<string, number> = {}
  let played = 0
  let switches = 0
  let weighted = 0
  for (const { linkBps, report: r } of viewers) {
    links[String(linkBps)] = (links[String(linkBps)] ?? 0) + 1
    played += r.playedS
    switches += r.rungSwitches
    for (const x of r.rungs) {
      const g = rungs.get(x.name) ?? { name: x.name, bandwidth: x.bandwidth, seconds: 0, bytes: 0 }
      g.seconds += x.seconds
      g.bytes += x.bytes
      weighted += x.bandwidth * x.seconds
      rungs.set(x.name, g)
    }
  }
  const shown = [...rungs.values()].reduce((a, g) => a + g.seconds, 0)
  const sum = (k: 'serverSwitches' | 'trials' | 'abandons') => viewers.reduce((a, v) => a + v.report[k], 0)
  return {
    viewers: viewers.length, links, averageBps: shown > 0 ? weighted / shown : 0,
    rungs: [...rungs.values()].sort((a, b) => a.bandwidth - b.bandwidth).map(g => ({ ...g, share: shown > 0 ? g.seconds / shown : 0 })),
    rungSwitchesPerViewer: viewers.length ? switches / viewers.length : 0,
    rungSwitchesPerMinute: played > 0 ? switches / (played / 60) : 0,
    serverSwitches: sum('serverSwitches'), trials: sum('trials'), abandons: sum('abandons'), playedS: played,
    qoe: viewers.length ? viewers.reduce((acc, v) => acc + qoeLinear(v.report), 0) / viewers.length : 0,
  }
}
