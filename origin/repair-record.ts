import { readFileSync } from 'node:fs'
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
 * `finishedAt`, at most MAX_BYTES) in one file beside its chunks, replaced
 * whole (written aside, then renamed); a newer report replaces an older one,
 * an older one is ignored, so passes that end in any order leave the newest.
 */
const FILE = 'repair-report.json'
export const MAX_REPAIR_REPORT_BYTES = 64 * 1024

export class RepairRecord {
  private last: Record<string, unknown> | null = null
  private writing: Promise<unknown> = Promise.resolve()

  constructor(private readonly dataDir: string) {
    try {
      this.last = JSON.parse(readFileSync(join(dataDir, FILE), 'utf8')) as Record<string, unknown>
    } catch {
      // none yet, or a torn file from before a crash: the next pass writes one
    }
  }

  get(): Record<string, unknown> | null {
    return this.last
  }

  /** Keeps `report` if it is newer than the one held; true when it was kept. */
  async put(report: unknown): Promise<boolean> {
    const r = report as Record<string, unknown> | null
    if (typeof r !== 'object' || r === null || Array.isArray(r) || typeof r.finishedAt !== 'number' || typeof r.remaining !== 'object' || r.remaining === null)
      throw new BadRequestError('a repair report is a JSON object with a numeric finishedAt and a remaining object', 'CDN_ERR_BAD_REPORT')
    // one write at a time: two at once would share the file written aside
    const kept = this.writing.then(async () => {
      if (this.last && typeof this.last.finishedAt === 'number' && this.last.finishedAt > (r.finishedAt as number)) return false
      const path = join(this.dataDir, FILE)
      await writeFile(`${path}.tmp`, JSON.stringify(r))
      await rename(`${path}.tmp`, path)
      this.last = r
      return true
    })
    this.writing = kept.catch(() => {})
    return kept
  }
}
