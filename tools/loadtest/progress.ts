/**
 * The live progress of a run on stderr: on a terminal one line redrawn in
 * place (at most five times a second); otherwise (a pipe, a CI log) a plain
 * line every `plainEveryMs`, with no control characters.
 */
export interface ProgressStream {
  isTTY?: boolean
  write(s: string): unknown
}

export interface ProgressFigures {
  elapsedS: number
  durationS: number
  /** players mode: sessions playing now and finished */
  active?: number
  done?: number
  /** http mode: requests in the last second */
  rps?: number
  mbps: number
  hitRatioSoFar: number | null | undefined
  offloadSoFar?: number | null | undefined
}

const share = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : (100 * x).toFixed(1) + ' %')

export function progressText(mode: 'http' | 'players', p: ProgressFigures): string {
  const parts = [`loadtest ${mode} ${p.elapsedS.toFixed(0)}/${p.durationS} s`]
  if (p.active !== undefined) parts.push(`sessions ${p.active} playing, ${p.done ?? 0} done`)
  if (p.rps !== undefined) parts.push(`${p.rps} req/s`)
  parts.push(`${p.mbps.toFixed(1)} MB/s`, `hit ratio so far ${share(p.hitRatioSoFar)}`, `offload so far ${share(p.offloadSoFar)}`)
  return parts.join('  ')
}

export class Progress {
  private last = -Infinity
  readonly tty: boolean

  constructor(private readonly out: ProgressStream = process.stderr, private readonly plainEveryMs = 5000, private readonly now = Date.now) {
    this.tty = out.isTTY === true
  }

  show(text: string, final = false): void {
    const t = this.now()
    // a tenth of slack: ticks that come a little early (timers, a slow /metrics read before the last) still print
    if (!final && t - this.last < 0.9 * (this.tty ? 200 : this.plainEveryMs)) return
    this.last = t
    this.out.write(this.tty ? `\r\x1b[2K${text}${final ? '\n' : ''}` : `${text}\n`)
  }
}
