import Database from 'better-sqlite3'
import { StorageError } from '../../lib/errors.js'
import { openDatabase } from '../../lib/storage/sqlite.js'

/**
 * Playback state: each viewer's last position per title (resume) and recent
 * history, kept in this router's SQLite file (`<router.dataDir>/sessions.sqlite`)
 * so a restart forgets nothing. Several routers each keep the reports that
 * reached them; a lookup asks the peers too and the latest report wins
 * (router/playback/session-peers.ts).
 *
 * Writes are batched: a report waits at most FLUSH_MS (or until MAX_BATCH are
 * waiting) and a batch is one transaction: a commit per report made each
 * report 6-14x dearer than batching did (README, Sessions). Every read
 * flushes first, so a lookup always sees every report accepted before it. A
 * process crash loses at most the last FLUSH_MS of reports, which players send
 * again within seconds; a batch that fails to commit is reported to `onError`
 * and dropped the same way.
 *
 * Bounded twice, on every report: at most `maxViewers` viewers (the least
 * recently active leaves first, with all its positions) and `historyLength`
 * titles per viewer (the oldest report leaves first). A viewer with no report
 * for `ttlMs` has expired: lookups ignore it at once, and its rows are deleted
 * at open and every SWEEP_EVERY reports (or when a new report revives it).
 *
 * Order within a router is the report order (`seq`, a counter restored from the
 * table at open), so reports in the same millisecond keep their order; across
 * routers only `updatedAt` (each router's clock) can compare them.
 *
 * The clock is injected (`now` in ms) so tests drive expiry.
 */
export interface Position {
  contentId: string
  /** byte offset in the title */
  position: number
  size: number
  updatedAt: number
}

export interface SessionOptions {
  maxViewers: number
  historyLength: number
  ttlMs: number
}

const SWEEP_EVERY = 1000
const FLUSH_MS = 100
const MAX_BATCH = 512

interface Row {
  content_id: string
  position: number
  size: number
  updated_at: number
}

const toPosition = (r: Row): Position => ({ contentId: r.content_id, position: r.position, size: r.size, updatedAt: r.updated_at })

export class Sessions {
  private readonly db: Database.Database
  private seq: number
  private viewers: number
  private sinceSweep = 0
  private pending: { viewer: string; p: Position }[] = []
  private timer: NodeJS.Timeout | undefined
  private readonly sViewer: Database.Statement<[string], { last_at: number }>
  private readonly sInsertViewer: Database.Statement<[string, number, number]>
  private readonly sUpdateViewer: Database.Statement<[number, number, string]>
  private readonly sPut: Database.Statement<[string, string, number, number, number, number]>
  private readonly sTrim: Database.Statement<[string, string, number]>
  private readonly sOldest: Database.Statement<[], { viewer: string }>
  private readonly sDropPositions: Database.Statement<[string]>
  private readonly sDropViewer: Database.Statement<[string]>
  private readonly sGet: Database.Statement<[string, string, number], Row>
  private readonly sHistory: Database.Statement<[string, number], Row>
  private readonly sSweepPositions: Database.Statement<[number]>
  private readonly sSweepViewers: Database.Statement<[number]>
  private readonly batchTx: (batch: { viewer: string; p: Position }[]) => void

  /** `file` is the SQLite file, or ':memory:' for a store that lives and dies with the process. */
  constructor(file: string, private readonly opts: SessionOptions, private readonly clock: () => number = Date.now,
    private readonly onError: (err: Error) => void = () => {}) {
    // a crash of the process loses nothing; a power cut may lose the last reports, which players send again
    this.db = openDatabase(file, 'the sessions store', [`
      CREATE TABLE IF NOT EXISTS viewers (viewer TEXT PRIMARY KEY, last_at INTEGER NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS viewers_by_seq ON viewers (seq);
      CREATE INDEX IF NOT EXISTS viewers_by_time ON viewers (last_at);
      CREATE TABLE IF NOT EXISTS positions (viewer TEXT NOT NULL, content_id TEXT NOT NULL, position INTEGER NOT NULL,
        size INTEGER NOT NULL, updated_at INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (viewer, content_id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS positions_by_seq ON positions (viewer, seq);`])
    const db = this.db
    this.sViewer = db.prepare('SELECT last_at FROM viewers WHERE viewer = ?')
    this.sInsertViewer = db.prepare('INSERT INTO viewers (viewer, last_at, seq) VALUES (?, ?, ?)')
    this.sUpdateViewer = db.prepare('UPDATE viewers SET last_at = ?, seq = ? WHERE viewer = ?')
    this.sPut = db.prepare(`INSERT INTO positions (viewer, content_id, position, size, updated_at, seq) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (viewer, content_id) DO UPDATE SET position = excluded.position, size = excluded.size, updated_at = excluded.updated_at, seq = excluded.seq`)
    // the (historyLength+1)-th newest and everything older
    this.sTrim = db.prepare(`DELETE FROM positions WHERE viewer = ? AND seq <= (SELECT seq FROM positions WHERE viewer = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`)
    this.sOldest = db.prepare('SELECT viewer FROM viewers ORDER BY seq LIMIT 1')
    this.sDropPositions = db.prepare('DELETE FROM positions WHERE viewer = ?')
    this.sDropViewer = db.prepare('DELETE FROM viewers WHERE viewer = ?')
    this.sGet = db.prepare(`SELECT p.content_id, p.position, p.size, p.updated_at FROM positions p JOIN viewers v ON v.viewer = p.viewer
      WHERE p.viewer = ? AND p.content_id = ? AND v.last_at > ?`)
    this.sHistory = db.prepare(`SELECT p.content_id, p.position, p.size, p.updated_at FROM positions p JOIN viewers v ON v.viewer = p.viewer
      WHERE p.viewer = ? AND v.last_at > ? ORDER BY p.seq DESC`)
    this.sSweepPositions = db.prepare('DELETE FROM positions WHERE viewer IN (SELECT viewer FROM viewers WHERE last_at <= ?)')
    this.sSweepViewers = db.prepare('DELETE FROM viewers WHERE last_at <= ?')
    this.seq = db.prepare<[], { s: number | null }>('SELECT MAX(seq) AS s FROM (SELECT MAX(seq) AS seq FROM viewers UNION ALL SELECT MAX(seq) FROM positions)').get()?.s ?? 0
    this.viewers = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM viewers').get()!.n
    this.batchTx = db.transaction((batch: { viewer: string; p: Position }[]) => { for (const r of batch) this.write(r.viewer, r.p) })
    this.sweep()
    // a smaller maxViewers than the last run's: apply it now
    db.transaction(() => this.evictOver())()
  }

  /** Queues a report; it is written within FLUSH_MS, and before any read. */
  report(viewer: string, p: Position): void {
    if (!this.db.open) throw new StorageError('the sessions store is closed')
    this.pending.push({ viewer, p })
    if (this.pending.length >= MAX_BATCH) this.flushOrReport()
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flushOrReport(), FLUSH_MS)
      this.timer.unref()
    }
  }

  private flushOrReport(): void {
    try {
      this.flush()
    } catch (err) {
      this.onError(err as Error)
    }
  }

  /** Writes the queued reports in one transaction. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    if (this.pending.length === 0) return
    const batch = this.pending
    this.pending = []
    try {
      this.batchTx(batch)
    } catch (err) {
      // rolled back: the in-memory viewer count followed the writes, so take it from the table again
      try {
        this.viewers = this.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM viewers').get()!.n
      } catch { /* the store is unusable: the error below says why */ }
      throw new StorageError(`cannot record ${batch.length} positions in the sessions store: ${(err as Error).message}`, { cause: err })
    }
    this.sinceSweep += batch.length
    if (this.sinceSweep >= SWEEP_EVERY) this.sweep()
  }

  private write(viewer: string, p: Position): void {
    const seq = ++this.seq
    const v = this.sViewer.get(viewer)
    if (v === undefined) {
      this.sInsertViewer.run(viewer, p.updatedAt, seq)
      this.viewers++
    } else {
      // an expired viewer coming back starts afresh: its old rows are no longer its history
      if (v.last_at <= this.clock() - this.opts.ttlMs) this.sDropPositions.run(viewer)
      this.sUpdateViewer.run(Math.max(v.last_at, p.updatedAt), seq, viewer)
    }
    this.sPut.run(viewer, p.contentId, p.position, p.size, p.updatedAt, seq)
    this.sTrim.run(viewer, viewer, this.opts.historyLength)
    this.evictOver()
  }

  private evictOver(): void {
    while (this.viewers > this.opts.maxViewers) {
      const old = this.sOldest.get()
      if (!old) break
      this.sDropPositions.run(old.viewer)
      this.sDropViewer.run(old.viewer)
      this.viewers--
    }
  }

  get(viewer: string, contentId: string): Position | undefined {
    this.flush()
    const r = this.sGet.get(viewer, contentId, this.clock() - this.opts.ttlMs)
    return r ? toPosition(r) : undefined
  }

  /** Most recent first. */
  history(viewer: string): Position[] {
    this.flush()
    return this.sHistory.all(viewer, this.clock() - this.opts.ttlMs).map(toPosition)
  }

  /** Viewers stored, expired ones not yet swept included. */
  get size(): number {
    this.flush()
    return this.viewers
  }

  /** Deletes expired viewers and their positions. */
  sweep(): void {
    this.sinceSweep = 0
    const cutoff = this.clock() - this.opts.ttlMs
    try {
      this.db.transaction(() => {
        this.sSweepPositions.run(cutoff)
        this.viewers -= this.sSweepViewers.run(cutoff).changes
      })()
    } catch (err) {
      throw new StorageError(`cannot sweep the sessions store: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Writes what is queued, then closes. */
  close(): void {
    if (!this.db.open) return
    try {
      this.flush()
    } finally {
      this.db.close()
    }
  }
}
