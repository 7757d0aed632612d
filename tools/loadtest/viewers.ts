import { setTimeout as sleep } from 'node:timers/promises'
import type { Dispatcher } from 'undici'
import { PlayerClient, type PlayResponse } from '../../client/player.js'
import { SequentialReader } from '../../client/sequential-reader.js'
import { abrViewer, DEFAULT_LINKS, drawLink, isAdaptivePlay, type AbrViewer } from './abr-viewers.js'
import { readerSizes, type PlannedSession } from './audience.js'
import type { PlayersOptions } from './players-mode.js'
import type { Rng } from './random.js'

/**
 * One viewer of a players run (tools/loadtest/players-mode.ts runs them):
 * it asks for its URLs, then plays a single-file title with the player
 * client and the sequential reader (`fileSession`), or an adaptive one with
 * the ABR player behind its link (`abrSession`, tools/loadtest/abr-viewers.ts),
 * and returns what the viewer saw. A viewer never throws: a failure is its
 * result's `error`, a run's end before its start-up is `cut`.
 */
export interface SessionResult {
  ok: boolean
  /** the run stopped before the start-up threshold was reached */
  cut: boolean
  contentId: string
  startupMs: number
  stallMs: number[]
  /** waits for the buffer after the viewer's own seeks: not stalls (the viewer asked for the jump) */
  seekWaitMs: number[]
  seeks: number
  watchMs: number
  bytes: number
  received: number
  /** of `received`, bytes from the URL /v1/play marked as the origin */
  fromOrigin: number
  error?: string
  /** an adaptive viewer's link and what it played */
  abr?: AbrViewer
}

/** A failed fetch ahead: a player waiting for bytes needs it now, not at its next read(). */
function readerFailed(r: SequentialReader): Error | undefined {
  return r.failure
}

export interface Run {
  o: PlayersOptions
  dispatcher: Dispatcher
  stopped: () => boolean
  /** bytes received by finished sessions, and the clients of those playing: the network throughput */
  received: { done: number; open: Set<{ bytesReceived: number }> }
}

const emptyResult = (contentId: string): SessionResult =>
  ({ ok: false, cut: false, contentId, startupMs: 0, stallMs: [], seekWaitMs: [], seeks: 0, watchMs: 0, bytes: 0, received: 0, fromOrigin: 0 })

/** A failed play step: cut if the run had stopped, else an error. */
function failedPlay(run: Run, contentId: string, err: unknown): SessionResult {
  const out = emptyResult(contentId)
  if (run.stopped()) out.cut = true
  else out.error = (err as Error).message
  return out
}

export async function session(run: Run, plan: PlannedSession, rng: Rng, index: number): Promise<SessionResult> {
  // a single-file viewer's start-up counts from here, its /v1/play request included, as it always has
  const t0 = performance.now()
  let answer: PlayResponse
  try {
    answer = await run.o.play(plan.contentId)
  } catch (err) {
    return failedPlay(run, plan.contentId, err)
  }
  return isAdaptivePlay(answer) ? abrSession(run, plan, index, answer) : fileSession(run, plan, rng, answer, t0)
}

/** An adaptive title's viewer: the ABR player behind its link; times in scenario seconds (what a viewer at real time sees). */
async function abrSession(run: Run, plan: PlannedSession, index: number, answer: PlayResponse): Promise<SessionResult> {
  const out = emptyResult(plan.contentId)
  const linkBps = drawLink(run.o.links ?? DEFAULT_LINKS, run.o.seed, index)
  let open: { bytesReceived: number } | undefined
  try {
    const v = await abrViewer(answer, { scenario: run.o.scenario, speed: run.o.speed, linkBps, watchS: plan.watchS, dispatcher: run.dispatcher,
      stopped: run.stopped, onOpen: p => { open = p; run.received.open.add(p) } })
    const r = v.report
    out.abr = v
    out.received = r.bytesReceived
    out.fromOrigin = r.bytesFromOrigin
    out.bytes = r.bytesReceived
    if (r.startupS === undefined) out.cut = run.stopped()
    if (r.error !== undefined && !run.stopped()) out.error = r.error
    else if (r.startupS !== undefined) {
      out.ok = true
      out.startupMs = r.startupS * 1000
      out.stallMs = r.stallTimesS.map(x => x * 1000)
      out.watchMs = r.playedS * 1000
    }
  } catch (err) {
    return failedPlay(run, plan.contentId, err)
  } finally {
    if (open) run.received.open.delete(open)
    run.received.done += out.received
  }
  return out
}

async function fileSession(run: Run, plan: PlannedSession, rng: Rng, answer: PlayResponse, t0: number): Promise<SessionResult> {
  const { o } = run
  const s = o.scenario
  // media bytes per second, and per second of wall-clock time at `speed`
  const mediaBps = plan.bps / 8
  const wallBps = mediaBps * o.speed
  const watchWallMs = plan.watchS * 1000 / o.speed
  const out: SessionResult = { ok: false, cut: false, contentId: plan.contentId, startupMs: 0, stallMs: [], seekWaitMs: [], seeks: 0, watchMs: 0, bytes: 0, received: 0, fromOrigin: 0 }
  let reader: SequentialReader | undefined
  let client: PlayerClient | undefined
  try {
    // position reports every 10 s of media time, as a real player's every 10 s
    client = await PlayerClient.open(answer,
      { dispatcher: run.dispatcher, reportIntervalMs: Math.max(100, Math.round(10_000 / o.speed)) })
    run.received.open.add(client)
    const sizes = readerSizes(mediaBps, s.bufferS)
    reader = new SequentialReader(client, { ...sizes, discard: true })
    const startupBytes = Math.min(client.size, Math.ceil(mediaBps * s.startupS))
    while (reader.buffered < startupBytes && !reader.atEnd && !run.stopped()) {
      const err = readerFailed(reader)
      if (err) throw err
      await sleep(5)
    }
    if (reader.buffered < startupBytes && !reader.atEnd) {
      out.cut = true
      return out
    }
    out.startupMs = performance.now() - t0
    // play: consume in 50 ms ticks of wall time
    const tick = 50
    let played = 0
    let stallStart: number | undefined
    let seeking = false
    while (played < watchWallMs && !reader.atEnd && !run.stopped()) {
      // a tick never asks for more than half the buffer: a player waiting for more than its buffer holds waits forever
      const want = Math.min(Math.ceil(wallBps * tick / 1000), Math.floor(sizes.bufferBytes / 2))
      if (reader.buffered < Math.min(want, client.size - reader.position)) {
        const err = readerFailed(reader)
        if (err) throw err
        stallStart ??= performance.now()
        await sleep(5)
        continue
      }
      if (stallStart !== undefined) (seeking ? out.seekWaitMs : out.stallMs).push(performance.now() - stallStart)
      stallStart = undefined
      seeking = false
      out.bytes += await reader.skip(want)
      played += tick
      if (rng() < s.seekChance) {
        reader.seek(Math.floor(rng() * client.size * 0.9))
        seeking = true
        out.seeks++
      }
      await sleep(tick)
    }
    if (stallStart !== undefined) (seeking ? out.seekWaitMs : out.stallMs).push(performance.now() - stallStart)
    out.watchMs = played
    out.ok = true
  } catch (err) {
    if (run.stopped() && out.startupMs === 0) out.cut = true
    else if (run.stopped()) out.ok = true // cut by the end of the run (the Agent destroyed), not a failure
    else out.error = (err as Error).message
  } finally {
    await reader?.close().catch(() => {})
    // the last position report (the router counts it in the title's per-position demand)
    await client?.close().catch(() => {})
    out.received = client?.bytesReceived ?? 0
    out.fromOrigin = client?.bytesFromOrigin ?? 0
    if (client) run.received.open.delete(client)
    run.received.done += out.received
  }
  return out
}
