import { ESTIMATOR_DEFAULTS, ThroughputEstimator, type EstimatorOptions } from './estimator.js'
import { ABR_DEFAULTS, abandonTo, chooseRung, initialAbrState, rungFor, type AbrOptions, type AbrRuleName, type AbrState, type DownloadProgress } from './rule.js'
import { SERVER_SWITCH_DEFAULTS, ServerSwitch, type ServerSwitchOptions, type ServerView } from './server-switch.js'

/**
 * The ABR decisions of one playback, whoever moves the bytes: the HLS player
 * (client/abr/hls-player.ts) over the network, the simulator
 * (client/abr/simulate.ts) in simulated time. Both call `next` before each
 * video segment and `sample` after each download (video and audio, from
 * whichever server), so the simulator tests the decisions the player makes.
 *
 * It keeps one throughput estimator per server: the current server's drives
 * the rung (client/abr/rule.ts), the others' are the history and trials the
 * server-switch rule weighs (client/abr/server-switch.ts). A server with no
 * sample yet (just failed over to) borrows the last estimate of any server.
 */
export interface AbrControllerOptions {
  abr: AbrOptions
  estimator: EstimatorOptions
  serverSwitch: ServerSwitchOptions
  /** the most the player buffers, seconds */
  maxBufferS: number
}

export const controllerDefaults = (maxBufferS = 30): AbrControllerOptions =>
  ({ abr: ABR_DEFAULTS, estimator: ESTIMATOR_DEFAULTS, serverSwitch: SERVER_SWITCH_DEFAULTS, maxBufferS })

export interface NextInput<K> {
  now: number
  bufferS: number
  segmentS: number
  playing: boolean
  current: K
  /** the other servers in failover order, failed ones left out */
  others: readonly K[]
}

export interface NextSegment<K> {
  rung: number
  rule: AbrRuleName
  /** where to fetch it from */
  server: K
  /** the segment is a trial of `server`: the current server stays current */
  trial: boolean
  /** the current server changed to `server` for quality */
  switched: boolean
}

export class AbrController<K> {
  private state: AbrState
  private readonly estimators = new Map<K, ThroughputEstimator>()
  private readonly switcher: ServerSwitch<K>
  private last: number | undefined
  /** per server, the rate of its last video segment */
  private readonly lastVideo = new Map<K, number>()
  /** rung changes chosen, server switches for quality, trial segments, downloads given up */
  rungChanges = 0
  serverSwitches = 0
  trials = 0
  abandons = 0

  constructor(readonly bitrates: readonly number[], readonly o: AbrControllerOptions = controllerDefaults()) {
    if (bitrates.length === 0 || bitrates.some((b, i) => !(b > 0) || (i > 0 && b < bitrates[i - 1]!)))
      throw new RangeError(`expected ascending positive bitrates, got ${bitrates.join(', ')}`)
    this.state = initialAbrState(0)
    this.switcher = new ServerSwitch(o.serverSwitch)
  }

  get rung(): number {
    return this.state.rung
  }

  private estimator(k: K): ThroughputEstimator {
    let e = this.estimators.get(k)
    if (!e) this.estimators.set(k, e = new ThroughputEstimator(this.o.estimator))
    return e
  }

  /** A download of `bytes` from `server` that took `seconds`, ending at `now`; `video` for a video segment (not audio, not a playlist). */
  sample(server: K, bytes: number, seconds: number, now: number, video = true): void {
    const e = this.estimator(server)
    e.sample(bytes, seconds, now)
    this.last = e.estimate
    if (video && bytes > 0) this.lastVideo.set(server, (bytes * 8) / Math.max(0.005, seconds))
  }

  /** bits per second for `server`: its own estimate, else the last of any server (undefined before any sample) */
  estimate(server: K): number | undefined {
    return this.estimators.get(server)?.estimate ?? this.last
  }

  private view(k: K): ServerView<K> {
    const e = this.estimators.get(k)
    return { key: k, bps: e?.estimate, at: e?.lastAt ?? -Infinity }
  }

  /** A failover moved playback to another server: the low timer restarts there. */
  failedOver(): void {
    this.switcher.reset()
  }

  /** After a seek: the throughput rule decides until the buffer is built again. */
  seeked(): void {
    this.state = { ...this.state, bola: false, placeholderS: 0, bufferS: 0 }
  }

  /** During a download at `rung`: the rung to fetch the segment at instead, if it should be given up (the rung becomes current). */
  abandon(p: Omit<DownloadProgress, 'rung'>): number | undefined {
    const q = abandonTo({ ...p, rung: this.state.rung }, this.bitrates, this.o.abr)
    if (q !== undefined) {
      this.abandons++
      this.rungChanges++
      this.state = { ...this.state, rung: q }
    }
    return q
  }

  next(i: NextInput<K>): NextSegment<K> {
    const top = this.bitrates.length - 1
    const rungOf = (bps: number) => rungFor(this.bitrates, bps * this.o.abr.safety)
    const d = this.switcher.decide(i.now, this.view(i.current), i.others.map(k => this.view(k)), rungOf, top)
    const server = d.kind === 'switch' ? d.to : i.current
    if (d.kind === 'switch') this.serverSwitches++
    if (d.kind === 'trial') this.trials++
    const c = chooseRung({ bufferS: i.bufferS, estimateBps: this.estimate(server), lastBps: this.lastVideo.get(server), bitrates: this.bitrates, segmentS: i.segmentS,
      maxBufferS: this.o.maxBufferS, playing: i.playing }, this.state, this.o.abr)
    if (c.rung !== this.state.rung) this.rungChanges++
    this.state = c.state
    return { rung: c.rung, rule: c.rule, server: d.kind === 'trial' ? d.to : server, trial: d.kind === 'trial', switched: d.kind === 'switch' }
  }
}
