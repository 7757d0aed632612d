import Database from 'better-sqlite3'
import { openDatabase } from '../../lib/storage/sqlite.js'

/**
 * The disk tier's SQLite index: one row per chunk file, with its per-block
 * CRC32Cs (what every read verifies) and an access sequence number (so a
 * restart rebuilds the recency order). A row is written before its file is
 * renamed into place and deleted before its file is unlinked, so after a crash
 * a final file without a row cannot exist and a row without a file is dropped
 * at start-up.
 *
 * Schema 2 adds `policy_state`: the disk tier's eviction policy (queue order,
 * frequency sketch) as one JSON document, so a restart resumes with warm
 * policy state (see edge/policy/policy.ts).
 *
 * Schema 3 (issue 15) adds `rid`: the rendition a chunk belongs to, '' for a
 * single-file title's own file (every row written before it), so a rendition's
 * file name and key can be rebuilt at start-up; `content_id` stays the title's,
 * so a purge by title takes its renditions.
 *
 * better-sqlite3 is synchronous: every call here is one short indexed
 * statement, or one transaction for a batch of access times.
 */

export interface DiskRow {
  key: string
  contentId: string
  /** the rendition; unset for a single-file title's own file */
  rid?: string | undefined
  index: number
  sha256: string
  size: number
  storedAt: number
  lastAccess: number
}

interface RawRow {
  key: string
  content_id: string
  rid: string
  idx: number
  sha256: string
  size: number
  stored_at: number
  last_access: number
}

/** Schema migrations, oldest first (lib/storage/sqlite.ts). */
const MIGRATIONS = [`
    CREATE TABLE chunks (
      key TEXT PRIMARY KEY, content_id TEXT NOT NULL, idx INTEGER NOT NULL, sha256 TEXT NOT NULL,
      size INTEGER NOT NULL, crcs BLOB NOT NULL, stored_at INTEGER NOT NULL, last_access INTEGER NOT NULL) WITHOUT ROWID;
    CREATE INDEX chunks_by_title ON chunks (content_id);`,
  `
    CREATE TABLE IF NOT EXISTS policy_state (tier TEXT PRIMARY KEY, state TEXT NOT NULL, saved_at INTEGER NOT NULL);`,
  `
    ALTER TABLE chunks ADD COLUMN rid TEXT NOT NULL DEFAULT '';`]

export class DiskIndex {
  private readonly db: Database.Database
  private readonly sAll: Database.Statement<[], RawRow>
  private readonly sInsert: Database.Statement<unknown[]>
  private readonly sDelete: Database.Statement<[string]>
  private readonly sCrcs: Database.Statement<[string], { crcs: Buffer }>
  private readonly sTouch: Database.Statement<[number, string]>
  private readonly sOfTitle: Database.Statement<[string], { key: string }>
  private readonly touchMany: (batch: Map<string, number>) => void
  private readonly sSaveState: Database.Statement<[string, string, number]>
  private readonly sLoadState: Database.Statement<[string], { state: string }>

  constructor(file: string) {
    this.db = openDatabase(file, "the edge's disk index", MIGRATIONS)
    this.sAll = this.db.prepare('SELECT key, content_id, rid, idx, sha256, size, stored_at, last_access FROM chunks ORDER BY last_access, key')
    this.sInsert = this.db.prepare('INSERT OR REPLACE INTO chunks (key, content_id, rid, idx, sha256, size, crcs, stored_at, last_access) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
    this.sDelete = this.db.prepare('DELETE FROM chunks WHERE key = ?')
    this.sCrcs = this.db.prepare('SELECT crcs FROM chunks WHERE key = ?')
    this.sTouch = this.db.prepare('UPDATE chunks SET last_access = ? WHERE key = ?')
    this.sOfTitle = this.db.prepare('SELECT key FROM chunks WHERE content_id = ?')
    this.sSaveState = this.db.prepare('INSERT OR REPLACE INTO policy_state (tier, state, saved_at) VALUES (?, ?, ?)')
    this.sLoadState = this.db.prepare('SELECT state FROM policy_state WHERE tier = ?')
    this.touchMany = this.db.transaction((batch: Map<string, number>) => {
      for (const [key, seq] of batch) this.sTouch.run(seq, key)
    })
  }

  /** Every row, least recently accessed first. */
  all(): DiskRow[] {
    return this.sAll.all().map(r => ({ key: r.key, contentId: r.content_id, rid: r.rid === '' ? undefined : r.rid, index: r.idx, sha256: r.sha256,
      size: r.size, storedAt: r.stored_at, lastAccess: r.last_access }))
  }

  insert(r: DiskRow, crcs: Buffer): void {
    this.sInsert.run(r.key, r.contentId, r.rid ?? '', r.index, r.sha256, r.size, crcs, r.storedAt, r.lastAccess)
  }

  delete(key: string): void {
    this.sDelete.run(key)
  }

  crcs(key: string): Buffer | undefined {
    return this.sCrcs.get(key)?.crcs
  }

  keysOf(contentId: string): string[] {
    return this.sOfTitle.all(contentId).map(r => r.key)
  }

  /** Records access sequence numbers in one transaction. */
  touch(batch: Map<string, number>): void {
    if (batch.size) this.touchMany(batch)
  }

  /** The tier's policy state as saved last (JSON), if any. */
  loadPolicyState(tier: string): string | undefined {
    return this.sLoadState.get(tier)?.state
  }

  savePolicyState(tier: string, state: string): void {
    this.sSaveState.run(tier, state, Date.now())
  }

  close(): void {
    if (this.db.open) this.db.close()
  }
}

/**
 * A read-only view of the index's block CRCs, for a serve thread
 * (edge/serve/thread-disk.ts): its own connection (a better-sqlite3 handle
 * belongs to one thread), never a writer, so the main thread stays the only
 * one that changes the index. WAL lets it read while the main thread writes;
 * a row deleted since the thread learned of its chunk reads as undefined,
 * which the thread takes as a miss.
 */
export class DiskCrcs {
  private readonly db: Database.Database
  private readonly sCrcs: Database.Statement<[string], { crcs: Buffer }>

  constructor(file: string) {
    this.db = new Database(file, { readonly: true, fileMustExist: true })
    this.db.pragma('busy_timeout = 5000')
    this.sCrcs = this.db.prepare('SELECT crcs FROM chunks WHERE key = ?')
  }

  crcs(key: string): Buffer | undefined {
    return this.sCrcs.get(key)?.crcs
  }

  close(): void {
    if (this.db.open) this.db.close()
  }
}
