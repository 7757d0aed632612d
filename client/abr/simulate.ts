import { PlaybackClock } from './clock.js'
import { AbrController, controllerDefaults, type AbrControllerOptions } from './controller.js'
import type { AbrRuleName } from './rule.js'

/**
 * One playback in simulated time: the ABR controller and the playback clock
 * the HLS player uses, over links whose capacity is a function of time, with
 * no socket and no timer, so a ten-minute session runs in milliseconds and
 * the same inputs give the same answer. The tests of the ABR rule and of the
 * server switch run here; the network player is tested against real servers.
 *
 * The model: one request at a time, each costing `rttS` and then its bytes at
 * `capacity(t, server)` bits/s (integrated in 10 ms steps, so a capacity may
 * change mid-download, and looked at by the abandon rule every 100 ms); the player fetches while less than `maxBufferS` is
 * buffered and waits otherwise; a download the controller gives up is
 * counted in the estimate and fetched again at the rung it names; video only (audio would add the same share to
 * every rung). Segment i of rung r is `sizes[r][i]` bytes, or bitrate × its
 * duration.
 */
export interface SimOptions {
  /** ascending bits/s */
  bitrates: number[]
  sizes?: number[][]
  segmentS: number
  segments: number
  startupS: number
  maxBufferS: number
  /** bits/s server `server` delivers to the viewer at time t (the viewer's link and the server's share, whichever is lower) */
  capacity: (t: number, server: number) => number
  servers?: number
  rttS?: number
  controller?: Partial<AbrControllerOptions>
  /** stop after this much simulated time */
  untilS?: number
}

export interface SimStep {
  /** when the request was made */
  at: number
  segment: number
  rung: number
  rule: AbrRuleName | 'abandon'
  server: number
  trial: boolean
  bufferS: number
  /** bits/s the download achieved */
  bps: number
  /** given up part-way (the next step fetches the segment again, lower) */
  abandoned?: boolean
}

export interface SimResult {
  steps: SimStep[]
  clock: PlaybackClock
  controller: AbrController<number>
  /** simulated seconds at the end */
  endS: number
  /** the lowest buffer seen while playing, just before a request */
  minPlayingBufferS: number
}

export function simulate(o: SimOptions): SimResult {
  const base = controllerDefaults(o.maxBufferS)
  const opts: AbrControllerOptions = { ...base, ...o.controller, maxBufferS: o.maxBufferS }
  const ctl = new AbrController<number>(o.bitrates, opts)
  const clock = new PlaybackClock({ startupS: o.startupS, durationS: o.segments * o.segmentS }, 0)
  const servers = o.servers ?? 1
  const rtt = o.rttS ?? 0.02
  const until = o.untilS ?? Infinity
  const steps: SimStep[] = []
  let t = 0
  let current = 0
  let minPlaying = Infinity
  for (let i = 0; i < o.segments && t < until; i++) {
    const level = clock.level(t)
    if (level >= o.maxBufferS) t += level - o.maxBufferS + 1e-6
    const bufferS = clock.level(t)
    const playing = clock.state === 'playing'
    if (playing) minPlaying = Math.min(minPlaying, bufferS)
    const others = Array.from({ length: servers }, (_, k) => k).filter(k => k !== current)
    const d = ctl.next({ now: t, bufferS, segmentS: o.segmentS, playing, current, others })
    if (d.switched) current = d.server
    let rung = d.rung
    let rule: AbrRuleName | 'abandon' = d.rule
    let abandoned = true
    let start = t
    while (abandoned) {
      abandoned = false
      const bytes = o.sizes?.[rung]?.[i] ?? (o.bitrates[rung]! * o.segmentS) / 8
      start = t
      t += rtt
      let bits = bytes * 8
      let ticks = 0
      for (;;) {
        const c = o.capacity(t, d.server)
        if (bits <= c * 0.01) {
          t += bits / c
          break
        }
        bits -= c * 0.01
        t += 0.01
        // the player looks as each piece of the body lands; here, every 100 ms
        if (++ticks % 10 !== 0) continue
        const loaded = bytes - bits / 8
        const q = ctl.abandon({ elapsedS: t - start, loadedBytes: loaded, totalBytes: bytes, bufferS: clock.level(t), segmentS: o.segmentS, playing: clock.state === 'playing' })
        if (q !== undefined) {
          ctl.sample(d.server, loaded, t - start, t)
          steps.push({ at: start, segment: i, rung, rule, server: d.server, trial: d.trial, bufferS, bps: (loaded * 8) / (t - start), abandoned: true })
          rung = q
          rule = 'abandon'
          abandoned = true
          break
        }
      }
      if (!abandoned) ctl.sample(d.server, bytes, t - start, t)
    }
    const bytes = o.sizes?.[rung]?.[i] ?? (o.bitrates[rung]! * o.segmentS) / 8
    steps.push({ at: start, segment: i, rung, rule, server: d.server, trial: d.trial, bufferS, bps: (bytes * 8) / (t - start) })
    clock.mark(i * o.segmentS, (i + 1) * o.segmentS, rung)
    clock.buffered((i + 1) * o.segmentS, t)
  }
  const endS = Math.min(until, Math.max(t, t + clock.level(t)))
  clock.finish(endS)
  return { steps, clock, controller: ctl, endS, minPlayingBufferS: minPlaying }
}

/** Rung changes between consecutive segments fetched whole, from `fromS` on. */
export function switchesAfter(steps: readonly SimStep[], fromS: number): number {
  const whole = steps.filter(s => !s.abandoned)
  let n = 0
  for (let i = 1; i < whole.length; i++) if (whole[i]!.at >= fromS && whole[i]!.rung !== whole[i - 1]!.rung) n++
  return n
}
