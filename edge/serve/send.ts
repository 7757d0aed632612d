import type { ServerResponse } from 'node:http'
import { ClientClosedError } from '../../lib/errors.js'
import { SliceQueue, SLICES, type SliceOptions } from './slices.js'

/**
 * Writing to a player with backpressure: a piece is handed to the socket, and
 * when the socket's buffer is full we wait for 'drain' before the next one, so
 * a slow player slows only itself and the edge buffers at most one piece per
 * response. A player that stops reading altogether is cut after `stallMs`,
 * which releases the Buffer it pins. `written`, if given, is called once the
 * socket is done with the piece (it was handed to the kernel, or the write
 * failed): the disk tier reuses its read buffers from there.
 *
 * An ended piece larger than a slice (a RAM hit's range) goes out a slice per
 * response per loop turn (edge/serve/slices.ts), so one player's 2 MiB never
 * holds the loop while other players' requests and connections wait.
 */
/** One piece of a response, with backpressure; `written` as above. */
export type SendPiece = (res: ServerResponse, piece: Buffer, written?: (err?: Error | null) => void) => Promise<void>

export interface Send extends SendPiece {
  /**
   * A response's last piece (the only one of a RAM hit, which goes out with
   * the headers in one write), ended at once: nothing waits for 'drain'; a sweep, not a timer
   * per response, cuts it if its player has not taken it all after `stallMs`.
   */
  end(res: ServerResponse, piece: Buffer, written?: () => void): void
  /** ended responses whose player has not taken every byte yet */
  pending(): number
  /** ended responses still watched, finished or not: a finished one is forgotten within a sweep (StallWatch) */
  held(): number
  /** the queue ended pieces larger than a slice go through */
  readonly slices: SliceQueue
}

export interface SendHooks {
  /** a response is cut for stalling */
  stalled(): void
  /** +1 when a response starts waiting for its player to read, -1 when it stops */
  blocked(delta: number): void
}

export function sender(stallMs: number, hooks: SendHooks, slicing: SliceOptions = SLICES): Send {
  const send = async (res: ServerResponse, piece: Buffer, written?: (err?: Error | null) => void) => {
    if (res.destroyed) throw new ClientClosedError()
    if (!(written ? res.write(piece, written) : res.write(piece))) await drainedWithin(res, stallMs, hooks)
  }
  const watch = new StallWatch(stallMs, hooks)
  const slices = new SliceQueue(slicing)
  return Object.assign(send, {
    end(res: ServerResponse, piece: Buffer, written?: () => void): void {
      // `written` runs on 'finish' (every byte handed to the kernel); never if the response is cut first
      slices.end(res, piece, written)
      if (!res.writableFinished && !res.destroyed) watch.add(res)
    },
    pending: () => watch.pending(),
    held: () => watch.held(),
    slices,
  })
}

/**
 * Ended responses whose bytes the socket still holds, each with the time by
 * which its player must have taken them: a sweep every SWEEP_MS (50 ms, or
 * stallMs / 4 if that is shorter) cuts the late ones (so a cut comes between
 * stallMs and stallMs + 50 ms after the end) and forgets the finished ones.
 * No listener or timer per response; the timer runs only while something is
 * watched.
 *
 * @NOTE why 50 ms: a finished response held here keeps its whole object graph
 * (request, headers, stream states) alive. Held for up to a second, as when
 * the sweep ran every second, most of them outlived a young-generation
 * collection (one every ~0.6 s at 1.4 GB/s of 2 MiB hits): under the tail
 * row's paced load each scavenge copied 2.4 MB of survivors and paused the
 * loop 5.6 ms on average, and the survivors filled the old space for a full
 * collection every few seconds. Forgotten within 50 ms they die young: 1.2 MB
 * survived a scavenge, which paused 3.5 ms (--trace-gc-nvp, 20 s runs). A
 * sweep visits the responses finished in the last 50 ms (a few dozen at hit
 * rates) and every one still waiting for its player.
 */
const SWEEP_MS = (stallMs: number) => Math.max(1, Math.min(50, Math.floor(stallMs / 4)))

class StallWatch {
  private readonly deadlines = new Map<ServerResponse, number>()
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly stallMs: number, private readonly hooks: SendHooks) {}

  add(res: ServerResponse): void {
    this.deadlines.set(res, performance.now() + this.stallMs)
    this.timer ??= setInterval(() => this.sweep(), SWEEP_MS(this.stallMs)).unref()
  }

  /** responses held, finished or not (for tests: a finished one is forgotten at the next sweep) */
  held(): number {
    return this.deadlines.size
  }

  /** at scrape time: the watched responses still waiting for their player */
  pending(): number {
    let n = 0
    for (const res of this.deadlines.keys()) if (!res.writableFinished && !res.destroyed) n++
    return n
  }

  private sweep(): void {
    const now = performance.now()
    for (const [res, deadline] of this.deadlines) {
      if (res.writableFinished || res.destroyed) {
        this.deadlines.delete(res)
      } else if (now >= deadline) {
        this.deadlines.delete(res)
        this.hooks.stalled()
        res.destroy(new ClientClosedError(`the client read nothing for ${this.stallMs} ms`))
      }
    }
    if (this.deadlines.size === 0) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }
}

function drainedWithin(res: ServerResponse, stallMs: number, hooks: SendHooks): Promise<void> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) return reject(new ClientClosedError())
    hooks.blocked(1)
    const done = (err?: Error) => {
      hooks.blocked(-1)
      clearTimeout(timer)
      res.off('drain', onDrain)
      res.off('close', onClose)
      if (err) reject(err)
      else resolve()
    }
    const onDrain = () => done()
    const onClose = () => done(new ClientClosedError())
    const timer = setTimeout(() => {
      hooks.stalled()
      done(new ClientClosedError(`the client read nothing for ${stallMs} ms`))
      res.destroy()
    }, stallMs)
    res.once('drain', onDrain)
    res.once('close', onClose)
  })
}
