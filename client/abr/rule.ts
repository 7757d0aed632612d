/**
 * Which rung the next video segment is fetched at: a pure function of the
 * buffer level, the throughput estimate and the ladder, so it is tested in
 * simulated time (client/abr/simulate.ts) and the HLS player only feeds it.
 *
 * It follows dash.js's DYNAMIC strategy (AbrController, rules/abr/BolaRule.js,
 * ThroughputRule.js, InsufficientBufferRule.js):
 *
 * 1. **Throughput rule** while the buffer is low: the highest rung whose
 *    bitrate is at most `safety` (0.9, dash.js's bandwidthSafetyFactor) times
 *    the estimate (client/abr/estimator.ts: hls.js's fast/slow EWMA). Moving up
 *    needs more margin than staying (`upSafety`, 0.8: hls.js uses 0.7 for up
 *    and 0.95 for down), so an estimate that wavers around one rung's bitrate
 *    does not flip between it and the next.
 * 2. **BOLA** once the buffer is built: above `stableBufferS` (12 s, dash.js's
 *    stableBufferTime), back to throughput below half of it (dash.js's
 *    hysteresis between the two). BOLA (Spiteri, Urgaonkar, Sitaraman, "BOLA:
 *    Near-Optimal Bitrate Adaptation for Online Videos", INFOCOM 2016,
 *    arXiv:1601.06748) picks the rung m maximising
 *    (V·(υ_m + γ) − Q) / S_m, with Q the buffer in seconds, S_m the rung's
 *    bitrate and υ_m = ln(S_m / S_0) + 1 its utility; V and γ are set, as
 *    dash.js does, so that the lowest rung is chosen below `bolaMinBufferS`
 *    (10 s) and the top one by the buffer target (the player's maximum buffer
 *    less two segments).
 *    - BOLA-O (the paper's oscillation fix, as dash.js does it): BOLA may not
 *      step up past max(the rung the estimate sustains at `safety`, the
 *      current rung), so on a
 *      steady link between two rungs it stays on the lower one instead of
 *      climbing on a full buffer and falling back when it drains.
 *    - The placeholder buffer (dash.js): on the hand-over from throughput to
 *      BOLA, virtual seconds are added to the buffer so BOLA starts at the rung
 *      the throughput rule chose rather than dropping to what 12 s of real
 *      buffer would give. Here a falling buffer spends the placeholder first,
 *      and it never lifts the effective buffer past BOLA's target, so it only
 *      smooths the hand-over and never delays a switch down for long.
 * 3. **The buffer guard** (dash.js's InsufficientBufferRule), always while
 *    playing: the segment must download in at most `guardShare` (0.5) of the
 *    buffer at the current estimate. This is what switches down fast on a
 *    falling link before BOLA's buffer thresholds are crossed.
 4. **Abandoning** (hls.js's _abandonRulesCheck, dash.js's
 *    AbandonRequestsRule): a download that, at the rate it is getting, would
 *    take more than `abandonShare` (0.8) of what is left in the buffer is
 *    given up, once it has run `abandonAfterS` (0.5 s), when the same segment
 *    at a lower rung the rate sustains would arrive in half the time still
 *    needed; the segment is fetched again at that rung. Without it a link that
 *    falls twentyfold in the middle of a top-rung segment spends most of a
 *    30 s buffer finishing that one segment.
 * Stepping up (rules 1 and 2) and the guard heed the lower of the estimate
 * and the rate the last video segment came at: the estimate lags a link that
 * has just fallen (after an abandoned download, BOLA on a full buffer would
 * otherwise climb straight back), and a step up can wait one segment.
 * Before playback starts, during a stall and after a seek, the throughput
 * rule alone decides (the buffer says nothing yet; dash.js resets BOLA's
 * placeholder on an empty buffer). Before any sample the estimate is
 * `startBps` (500 kb/s, hls.js's abrEwmaDefaultEstimate).
 *
 * Rungs are numbered from 0, the lowest; bitrates are ascending, bits/s,
 * audio included (what a viewer's link must carry).
 */
export interface AbrOptions {
  safety: number
  upSafety: number
  stableBufferS: number
  bolaMinBufferS: number
  guardShare: number
  startBps: number
  abandonShare: number
  abandonAfterS: number
}

export const ABR_DEFAULTS: AbrOptions = { safety: 0.9, upSafety: 0.8, stableBufferS: 12, bolaMinBufferS: 10, guardShare: 0.5, startBps: 500_000,
  abandonShare: 0.8, abandonAfterS: 0.5 }

export interface AbrInput {
  /** seconds of media buffered ahead of the play position */
  bufferS: number
  /** bits per second; undefined before any sample */
  estimateBps: number | undefined
  /** bits per second the last video segment came at, if any */
  lastBps?: number | undefined
  bitrates: readonly number[]
  /** the next segment's duration, seconds */
  segmentS: number
  /** the most the player buffers, seconds */
  maxBufferS: number
  /** false before playback starts, during a stall and after a seek */
  playing: boolean
}

export interface AbrState {
  rung: number
  bola: boolean
  placeholderS: number
  /** the buffer at the last choice, to see it fall */
  bufferS: number
}

export type AbrRuleName = 'throughput' | 'bola' | 'guard'

export interface AbrChoice {
  rung: number
  rule: AbrRuleName
  state: AbrState
}

export const initialAbrState = (rung = 0): AbrState => ({ rung, bola: false, placeholderS: 0, bufferS: 0 })

/** The highest rung whose bitrate is at most `bps`; 0 if none is. */
export function rungFor(bitrates: readonly number[], bps: number): number {
  let q = 0
  for (let i = 1; i < bitrates.length; i++) if (bitrates[i]! <= bps) q = i
  return q
}

export interface BolaParams {
  utilities: number[]
  vp: number
  gp: number
}

/** V and γ such that BOLA picks the lowest rung below about minS of buffer and the top one by targetS (dash.js's calculation). */
export function bolaParams(bitrates: readonly number[], minS: number, targetS: number): BolaParams {
  const utilities = bitrates.map(b => Math.log(b / bitrates[0]!) + 1)
  const top = utilities[utilities.length - 1]!
  // Vp·(υ_0 + γ − 1) = minS and Vp·(υ_top + γ − 1) = targetS, with υ_0 = 1
  const vp = (targetS - minS) / Math.max(1e-9, top - 1)
  return { utilities, vp, gp: minS / vp }
}

export function bolaRung(p: BolaParams, bitrates: readonly number[], bufferS: number): number {
  let best = 0
  let score = -Infinity
  for (let i = 0; i < bitrates.length; i++) {
    const s = (p.vp * (p.utilities[i]! + p.gp) - bufferS) / bitrates[i]!
    if (s >= score) { score = s; best = i }
  }
  return best
}

/** The least buffer at which BOLA prefers rung q to every lower rung. */
export function minBufferFor(p: BolaParams, bitrates: readonly number[], q: number): number {
  let min = 0
  for (let i = 0; i < q; i++) {
    const level = p.vp * (p.gp + (bitrates[q]! * p.utilities[i]! - bitrates[i]! * p.utilities[q]!) / (bitrates[q]! - bitrates[i]!))
    min = Math.max(min, level)
  }
  return min
}

export function chooseRung(i: AbrInput, s: AbrState, o: AbrOptions = ABR_DEFAULTS): AbrChoice {
  const b = i.bitrates
  const est = i.estimateBps ?? o.startBps
  // stepping up and the guard also heed the last segment: the estimate lags a link that has just fallen
  const cautious = Math.min(est, i.lastBps ?? est)
  const keep = rungFor(b, est * o.safety)
  const tput = keep <= s.rung ? keep : Math.max(s.rung, rungFor(b, cautious * o.upSafety))
  const stable = Math.min(o.stableBufferS, i.maxBufferS / 2)
  const bola = b.length > 1 && i.playing && i.bufferS > (s.bola ? stable / 2 : stable)
  let rung = tput
  let rule: AbrRuleName = 'throughput'
  let placeholder = 0
  if (bola) {
    const minS = Math.min(o.bolaMinBufferS, 0.8 * stable)
    const targetS = Math.max(minS + i.segmentS, i.maxBufferS - 2 * i.segmentS)
    const p = bolaParams(b, minS, targetS)
    // (a hair over the threshold: at it, BOLA is torn between two rungs)
    placeholder = !s.bola ? Math.max(0, minBufferFor(p, b, s.rung) + 0.01 - i.bufferS)
      : Math.max(0, s.placeholderS - Math.max(0, s.bufferS - i.bufferS))
    placeholder = Math.min(placeholder, Math.max(0, targetS - i.bufferS))
    const q = bolaRung(p, b, i.bufferS + placeholder)
    // up to what the link sustains at `safety`: the buffer absorbs the estimate's wavering, so upSafety's margin is not needed here
    rung = q > s.rung ? Math.min(q, Math.max(rungFor(b, cautious * o.safety), s.rung)) : q
    rule = 'bola'
  }
  if (i.playing) {
    const cap = rungFor(b, (cautious * o.guardShare * i.bufferS) / i.segmentS)
    if (cap < rung) { rung = cap; rule = 'guard' }
  }
  return { rung, rule, state: { rung, bola, placeholderS: placeholder, bufferS: i.bufferS } }
}

export interface DownloadProgress {
  rung: number
  /** seconds since the request was made */
  elapsedS: number
  loadedBytes: number
  totalBytes: number
  /** seconds buffered now */
  bufferS: number
  segmentS: number
  playing: boolean
}

/** The lower rung to fetch this segment at instead, when the download in progress should be given up (rule 4); else undefined. */
export function abandonTo(p: DownloadProgress, bitrates: readonly number[], o: AbrOptions = ABR_DEFAULTS): number | undefined {
  if (!p.playing || p.rung === 0 || p.elapsedS < o.abandonAfterS || p.loadedBytes <= 0 || p.loadedBytes >= p.totalBytes) return undefined
  const rate = (p.loadedBytes * 8) / p.elapsedS
  const remaining = ((p.totalBytes - p.loadedBytes) * 8) / rate
  if (remaining <= o.abandonShare * p.bufferS) return undefined
  const q = Math.min(p.rung - 1, rungFor(bitrates, rate * o.safety))
  const again = (bitrates[q]! * p.segmentS) / rate
  return again < remaining / 2 ? q : undefined
}
