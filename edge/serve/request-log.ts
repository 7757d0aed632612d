import { appendFile, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../../lib/logger.js'

/**
 * The edge's chunk request log, for `reelcdn edge report` (edge/report.ts):
 * one line per chunk read by a player, tab-separated:
 *
 *   time-ms  chunk-key  chunk-bytes  bytes-sent  result  session
 *
 * where result is ram_hit | disk_hit | miss | coalesced (as in
 * reelcdn_edge_requests_total); and, at most once a second when the edge
 * fetched chunk bytes upstream since the last one (for players, readahead or
 * prefill), a line of those bytes, so the report can give the origin offload:
 *
 *   time-ms  -  0  upstream-bytes  upstream  -
 *
 * Bounded and rotating: `requests.log` grows to
 * `maxBytes`, then becomes `requests.1.log` (the older ones shift up to
 * `requests.<files>.log`, the oldest is deleted). At most `maxBytes × (files + 1)`
 * bytes on disk, plus one batch.
 *
 * Cost on the read path: one string per chunk read, buffered in memory and
 * appended once a second (or at 1 MiB) by a single writer; if the disk falls
 * behind, lines past MAX_PENDING are dropped and counted, never queued without
 * bound. Lines are whole: a reader never sees half a line except the last one
 * of a file being appended to, which `readRequestLog` skips.
 */
export const LOG_NAME = 'requests.log'
const FLUSH_MS = 1000
const FLUSH_BYTES = 1024 ** 2
const MAX_PENDING = 200_000
const UNSAFE = /[\t\n\r]/g

export class RequestLog {
  private pending: string[] = []
  private pendingBytes = 0
  private size = -1
  private writing: Promise<void> | null = null
  private readonly timer: NodeJS.Timeout
  /** the upstream byte total at the last upstream line */
  private upstreamLogged = 0
  dropped = 0

  /** `upstream`: the edge's upstream byte total so far (reelcdn_edge_upstream_bytes_total) */
  constructor(readonly dir: string, readonly maxBytes: number, readonly files: number, private readonly logger: Logger,
    private readonly upstream?: () => Promise<number>) {
    this.timer = setInterval(() => void this.flush(), FLUSH_MS).unref()
  }

  record(now: number, key: string, chunkBytes: number, bytes: number, result: string, session: string): void {
    if (this.pending.length >= MAX_PENDING) return void this.dropped++
    const line = `${now}\t${key}\t${chunkBytes}\t${bytes}\t${result}\t${UNSAFE.test(session) ? session.replace(UNSAFE, '_') : session}\n`
    UNSAFE.lastIndex = 0
    this.pending.push(line)
    this.pendingBytes += line.length
    if (this.pendingBytes >= FLUSH_BYTES) void this.flush()
  }

  /** Appends what is buffered; one writer at a time, so lines stay in order. */
  flush(): Promise<void> {
    this.writing ??= this.drain().finally(() => { this.writing = null })
    return this.writing
  }

  private async drain(): Promise<void> {
    if (this.upstream) {
      const total = await this.upstream().catch(() => this.upstreamLogged)
      if (total > this.upstreamLogged) {
        this.pending.push(`${Date.now()}\t-\t0\t${total - this.upstreamLogged}\tupstream\t-\n`)
        this.upstreamLogged = total
      }
    }
    while (this.pending.length) {
      const batch = this.pending.join('')
      this.pending = []
      this.pendingBytes = 0
      const file = join(this.dir, LOG_NAME)
      try {
        if (this.size < 0) this.size = (await stat(file).catch(() => ({ size: 0 }))).size
        await appendFile(file, batch)
        this.size += Buffer.byteLength(batch)
        if (this.size >= this.maxBytes) await this.rotate()
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'edge request log: append failed, lines dropped')
      }
    }
  }

  private async rotate(): Promise<void> {
    for (let i = this.files; i >= 1; i--) {
      const from = join(this.dir, i === 1 ? LOG_NAME : `requests.${i - 1}.log`)
      await rename(from, join(this.dir, `requests.${i}.log`)).catch(() => {})
    }
    if (this.files === 0) await rm(join(this.dir, LOG_NAME), { force: true })
    this.size = 0
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
  }
}

export interface LoggedRead {
  t: number
  key: string
  chunkBytes: number
  bytes: number
  result: string
  session: string
}

/** The log files under `dir`, oldest first. */
export async function logFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[])
  const rotated = names.map(n => /^requests\.(\d+)\.log$/.exec(n)).filter(m => m !== null)
    .sort((a, b) => Number(b[1]) - Number(a[1])).map(m => m[0])
  return [...rotated, ...(names.includes(LOG_NAME) ? [LOG_NAME] : [])].map(n => join(dir, n))
}

/** What the upstream lines of a log add up to; `lines` 0: a log written before they were (no offload known). */
export interface LoggedUpstream {
  bytes: number
  lines: number
}

/** Parses one file's text into its reads (and its upstream lines into `upstream`); malformed lines (a torn last line) are skipped and counted. */
export function parseRequestLog(text: string, into: LoggedRead[], upstream?: LoggedUpstream): number {
  let bad = 0
  for (const line of text.split('\n')) {
    if (line === '') continue
    const f = line.split('\t')
    const t = Number(f[0]), chunkBytes = Number(f[2]), bytes = Number(f[3])
    if (f.length === 6 && f[4] === 'upstream' && Number.isFinite(t) && bytes >= 0) {
      if (upstream) { upstream.bytes += bytes; upstream.lines++ }
      continue
    }
    if (f.length !== 6 || !Number.isFinite(t) || !(chunkBytes > 0) || !(bytes >= 0) || f[1] === '') { bad++; continue }
    into.push({ t, key: f[1]!, chunkBytes, bytes, result: f[4]!, session: f[5]! })
  }
  return bad
}
