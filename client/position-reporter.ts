import { request, type Dispatcher } from 'undici'

/**
 * The player's playback-state reports: every `intervalMs` while playing it
 * sends `PUT <sessionUrl> {position}` with the play token, so the router can
 * offer the viewer a resume point and count where people watch (the
 * per-position demand prefill ranks by). A report goes only when the position
 * moved since the last one that succeeded, or since open (a player still
 * starting up or paused is silent: it would count demand where nobody
 * watches), one at
 * a time (a slow router never piles reports up), and a failed report is
 * counted and retried at the next tick, never surfaced to playback.
 * `close()` stops the timer and sends the last position once more if it moved.
 */
export interface ReporterOptions {
  /** the router's `/v1/sessions/{contentId}` URL, from the play answer */
  url: string
  token: string
  intervalMs: number
  timeoutMs: number
  dispatcher: Dispatcher
  /** the play position, a byte offset */
  position: () => number
}

export class PositionReporter {
  /** reports the router accepted */
  sent = 0
  failed = 0
  lastError: string | undefined
  private reported: number | undefined
  private timer: NodeJS.Timeout | undefined
  private inFlight: Promise<void> | undefined
  private closed = false

  constructor(private readonly o: ReporterOptions) {
    if (!(Number.isInteger(o.intervalMs) && o.intervalMs > 0)) throw new RangeError(`expected reportIntervalMs to be a positive integer, got ${o.intervalMs}`)
    this.reported = o.position()
  }

  /** whether the timer runs: from start() to close() */
  get active(): boolean {
    return this.timer !== undefined && !this.closed
  }

  start(): void {
    if (this.timer || this.closed) return
    this.timer = setInterval(() => void this.report(), this.o.intervalMs)
    // reports never keep a process alive on their own
    this.timer.unref()
  }

  /** Sends the position now unless it has not moved or a report is already on its way. */
  report(): Promise<void> {
    if (this.inFlight) return this.inFlight
    const position = this.o.position()
    if (position === this.reported) return Promise.resolve()
    this.inFlight = this.put(position).finally(() => { this.inFlight = undefined })
    return this.inFlight
  }

  private async put(position: number): Promise<void> {
    try {
      const res = await request(this.o.url, {
        method: 'PUT', dispatcher: this.o.dispatcher, headersTimeout: this.o.timeoutMs, bodyTimeout: this.o.timeoutMs,
        headers: { authorization: `Bearer ${this.o.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ position }),
      })
      const text = await res.body.text()
      if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${text.slice(0, 200)}`)
      this.reported = position
      this.sent++
    } catch (err) {
      this.failed++
      this.lastError = (err as Error).message
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    await this.inFlight
    await this.report()
  }
}
