import { Writable } from 'node:stream'
import { Progress } from '../../../lib/progress.js'

/**
 * Progress of transcode jobs that run at once (the parallel strategy has one
 * ffmpeg per rung), one line each. Each line is a lib/progress.ts Progress
 * (seconds of the source as its items: "27 / 60 2/s" reads 27 s of 60 done
 * at twice real time). Off a terminal each job prints one plain line, when
 * it ends (which interleave readably in a log). On a terminal one Progress
 * would redraw its single line in place and several would overwrite each
 * other, so Bars draws them as a block instead: every line, at most every
 * 100 ms, then the cursor back up to the block's first line.
 */
export interface Bar {
  update(seconds: number, note?: string): void
  /** `complete`: the job ended well, so the bar shows all of it (ffmpeg's last report may be a little short of the end) */
  finish(note?: string, complete?: boolean): void
}

const silent = Object.assign(new Writable({ write(_c, _e, cb) { cb() } }), { isTTY: false }) as unknown as NodeJS.WriteStream

export class Bars {
  private readonly tty: boolean
  private readonly lines: Progress[] = []
  private drawn = 0
  private last = 0

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = out.isTTY === true
  }

  add(label: string, totalSeconds: number | undefined): Bar {
    const total = totalSeconds !== undefined ? Math.max(1, Math.round(totalSeconds)) : undefined
    // off a terminal only the last line: ffmpeg's progress every 2 s would fill a log
    const p = new Progress({ label, unit: 'items', stream: this.tty ? silent : this.out, plainEveryMs: Infinity, ...(total !== undefined ? { total } : {}) })
    const whole = (complete?: boolean) => { if (complete && total !== undefined) p.update(total) }
    if (!this.tty) return { update: (s, note) => p.update(Math.floor(s), note), finish: (note, complete) => { whole(complete); p.finish(note) } }
    this.lines.push(p)
    this.draw(true)
    return {
      update: (s, note) => {
        p.update(Math.floor(s), note)
        this.draw(false)
      },
      finish: (note, complete) => {
        whole(complete)
        p.finish(note)
        this.draw(true)
      },
    }
  }

  private draw(force: boolean): void {
    const now = performance.now()
    if (!force && now - this.last < 100) return
    this.last = now
    const up = this.drawn > 0 ? `\x1b[${this.drawn}A` : ''
    this.out.write(up + this.lines.map(p => `\r\x1b[2K${p.line()}\n`).join(''))
    this.drawn = this.lines.length
  }
}
