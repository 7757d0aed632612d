import { readFileSync, statSync } from 'node:fs'
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BadRequestError } from '../lib/errors.js'

/**
 * The last repair pass's report, as whoever ran it left it here: a router's
 * background repairer, `POST /v1/cluster/repair`, or `reelcdn router repair`
 * from an operator's machine. Each pass writes its report to every shard it
 * reached (`PUT /v1/repair-report`, shard token), and every router reads it
 * back from the shards' `/v1/status` on its health checks: that is how a
 * router's `/v1/cluster` and replica metrics learn of a pass another process
 * ran, with no address or credential of the routers needed by the pass, for
 * any number of routers, across restarts.
 *
 * The shard keeps the report as it was sent (an object with a numeric
 * `finishedAt`, at most MAX_BYTES) plus `receivedAt`, the shard's own clock
 * when it arrived, in one file beside its chunks, replaced whole (written
 * aside, then renamed). The report that arrived last is kept: the sender's
 * clock is not ours to trust, and a pass whose finishedAt ran ahead (an
 * operator's laptop an hour fast) would otherwise beat every later pass, on
 * every router, for as long as it ran ahead. A finishedAt more than
 * MAX_CLOCK_AHEAD_MS ahead of the shard's clock is refused, naming the clock.
 * The status carries the report's age by the shard's clock, so a router can
 * place it on its own (router/cluster/cluster-view.ts).
 */
const FILE = 'repair-report.json'
export const MAX_REPAIR_REPORT_BYTES = 64 * 1024
/** how far ahead of the shard's clock a report's finishedAt may be: clocks a minute apart are skew, further a wrong clock */
export const MAX_CLOCK_AHEAD_MS = 60_000

export class RepairRecord {
  private last: Record<string, unknown> | null = null
  private writing: Promise<unknown> = Promise.resolve()

  constructor(private readonly dataDir: string) {
    try {
      const path = join(dataDir, FILE)
      this.last = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
      // kept before reports were stamped: it arrived when its file was written, by this shard's clock
      if (typeof this.last.receivedAt !== 'number') this.last.receivedAt = statSync(path).mtimeMs
    } catch {
      // none yet, or a torn file from before a crash: the next pass writes one
    }
  }

  get(): Record<string, unknown> | null {
    return this.last
  }

  /** How long ago (by this shard's clock) the report held arrived; undefined for none. */
  ageMs(now = Date.now()): number | undefined {
    const at = this.last?.receivedAt
    return typeof at === 'number' ? Math.max(0, now - at) : undefined
  }

  /** Keeps `report`, stamped with its arrival, in place of the one held (see above); true when it was kept. */
  async put(report: unknown, now = Date.now()): Promise<boolean> {
    const r = report as Record<string, unknown> | null
    if (typeof r !== 'object' || r === null || Array.isArray(r) || typeof r.finishedAt !== 'number' || typeof r.remaining !== 'object' || r.remaining === null)
      throw new BadRequestError('a repair report is a JSON object with a numeric finishedAt and a remaining object', 'CDN_ERR_BAD_REPORT')
    const ahead = r.finishedAt - now
    if (ahead > MAX_CLOCK_AHEAD_MS)
      throw new BadRequestError(`the repair report's finishedAt is ${Math.round(ahead / 1000)} s ahead of this shard's clock (more than ${MAX_CLOCK_AHEAD_MS / 1000} s): check the clock of the machine that ran the pass`, 'CDN_ERR_BAD_REPORT')
    const kept = { ...r, receivedAt: now }
    // one write at a time, in order of arrival: two at once would share the file written aside
    const done = this.writing.then(async () => {
      const path = join(this.dataDir, FILE)
      await writeFile(`${path}.tmp`, JSON.stringify(kept))
      await rename(`${path}.tmp`, path)
      this.last = kept
      return true
    })
    this.writing = done.catch(() => {})
    return done
  }
}
