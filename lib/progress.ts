import { formatBytes } from './config/units.js'

/**
 * Progress for command-line tools. On a terminal: one line redrawn in place
 * (bar, bytes, MB/s, ETA), at most every 100 ms. Otherwise (a pipe, a log,
 * CI): a plain line every `plainEveryMs` and one at the end, so logs stay
 * readable. Rates are decimal MB/s, like every rate in our config.
 */
export interface ProgressOptions {
  label: string
  /** total bytes or items, if known */
  total?: number
  unit: 'bytes' | 'items'
  stream?: NodeJS.WriteStream
  plainEveryMs?: number
}

export class Progress {
  private readonly out: NodeJS.WriteStream
  private readonly tty: boolean
  private readonly started = performance.now()
  private lastDraw = 0
  private done = 0
  private note = ''

  constructor(private readonly o: ProgressOptions) {
    this.out = o.stream ?? process.stderr
    this.tty = this.out.isTTY === true
    // plain output waits a full period before its first line: short tasks print only the final one
    if (!this.tty) this.lastDraw = this.started
  }

  update(done: number, note = ''): void {
    this.done = done
    this.note = note
    const now = performance.now()
    if (now - this.lastDraw < (this.tty ? 100 : this.o.plainEveryMs ?? 2000)) return
    this.lastDraw = now
    this.draw(false)
  }

  finish(note = ''): void {
    this.note = note
    this.draw(true)
  }

  /** The line as it would be drawn now; exposed for tests. */
  line(): string {
    const secs = (performance.now() - this.started) / 1000
    const rate = secs > 0 ? this.done / secs : 0
    const total = this.o.total
    const amount = this.o.unit === 'bytes' ? formatBytes(this.done) + (total !== undefined ? ` / ${formatBytes(total)}` : '')
      : `${this.done}${total !== undefined ? ` / ${total}` : ''}`
    const speed = this.o.unit === 'bytes' ? `${(rate / 1e6).toFixed(1)} MB/s` : `${rate.toFixed(0)}/s`
    let eta = ''
    if (total !== undefined && rate > 0 && this.done < total) eta = ` ETA ${fmtSecs((total - this.done) / rate)}`
    let bar = ''
    if (total !== undefined && total > 0) {
      const frac = Math.min(1, this.done / total)
      const width = 24
      const full = Math.round(frac * width)
      bar = `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% `
    }
    return `${this.o.label} ${bar}${amount} ${speed}${eta}${this.note ? ' ' + this.note : ''}`
  }

  private draw(final: boolean): void {
    const l = this.line()
    if (this.tty) this.out.write(`\r\x1b[2K${l}${final ? '\n' : ''}`)
    else this.out.write(`${l}\n`)
  }
}

function fmtSecs(s: number): string {
  if (!Number.isFinite(s)) return '?'
  const m = Math.floor(s / 60)
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`
}
