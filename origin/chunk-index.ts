import Database from 'better-sqlite3'
import { LRUCache } from 'lru-cache'
import { openDatabase } from '../lib/storage/sqlite.js'

/**
 * The shard's SQLite index: one row per stored chunk (with its per-block
 * CRC32C checksums) and one per manifest. A row exists only for a chunk whose
 * file is complete, fsynced and verified, so a row is a promise the bytes are
 * there; start-up recovery keeps that promise true after a crash.
 *
 * better-sqlite3 is synchronous: every call here is a short indexed statement.
 *
 * Chunk rows read by `get` are kept in a small LRU cache: every GET looks its
 * row up, and a SQLite query copying the row's CRC blob (4 KiB for a 64 MiB
 * chunk) was the largest cost of a small read. This class is the only writer
 * of the table (one shard process per data directory), and every write below
 * drops the row from the cache, so a cached row is never stale. Cached rows are
 * frozen and shared: callers must not change them (none do).
 */

export type ChunkState = 'ok' | 'corrupt'

export interface ChunkRow {
  contentId: string
  index: number
  size: number
  sha256: string
  /** CRC32C of each `blockSize` block, 4 bytes each, big-endian */
  crcs: Buffer
  blockSize: number
  state: ChunkState
  createdAt: number
  verifiedAt: number
}

interface RawRow {
  content_id: string
  idx: number
  size: number
  sha256: string
  crcs: Buffer
  block_size: number
  state: ChunkState
  created_at: number
  verified_at: number
}

function fromRaw(r: RawRow): ChunkRow {
  return { contentId: r.content_id, index: r.idx, size: r.size, sha256: r.sha256, crcs: r.crcs, blockSize: r.block_size,
    state: r.state, createdAt: r.created_at, verifiedAt: r.verified_at }
}

export interface ManifestRow {
  contentId: string
  body: string
  etag: string
  updatedAt: number
}

/** Schema migrations, oldest first (lib/storage/sqlite.ts). */
const MIGRATIONS = [`
    CREATE TABLE chunks (
      content_id TEXT NOT NULL, idx INTEGER NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
      crcs BLOB NOT NULL, block_size INTEGER NOT NULL, state TEXT NOT NULL,
      created_at INTEGER NOT NULL, verified_at INTEGER NOT NULL,
      PRIMARY KEY (content_id, idx)) WITHOUT ROWID;
    CREATE TABLE manifests (content_id TEXT PRIMARY KEY, body TEXT NOT NULL, etag TEXT NOT NULL, updated_at INTEGER NOT NULL);`]

export class ChunkIndex {
  private readonly db: Database.Database
  // ~4 KiB a row for 64 MiB chunks: 16 MiB at most
  private readonly rows = new LRUCache<string, ChunkRow>({ max: 4096 })
  private readonly sGet: Database.Statement<[string, number], RawRow>
  private readonly sInsert: Database.Statement<unknown[]>
  private readonly sDelete: Database.Statement<[string, number]>
  private readonly sState: Database.Statement<[ChunkState, string, number]>
  private readonly sVerified: Database.Statement<[number, string, number]>
  private readonly sAfter: Database.Statement<[string, string, number, number], RawRow>
  private readonly sStats: Database.Statement<[], { state: ChunkState; n: number; bytes: number }>
  private readonly sManGet: Database.Statement<[string], { content_id: string; body: string; etag: string; updated_at: number }>
  private readonly sManPut: Database.Statement<[string, string, string, number]>
  private readonly sManDel: Database.Statement<[string]>
  private readonly sManPage: Database.Statement<[string, number], { content_id: string; etag: string; updated_at: number }>

  constructor(file: string) {
    this.db = openDatabase(file, 'chunk index', MIGRATIONS)
    const cols = 'content_id, idx, size, sha256, crcs, block_size, state, created_at, verified_at'
    this.sGet = this.db.prepare(`SELECT ${cols} FROM chunks WHERE content_id = ? AND idx = ?`)
    this.sInsert = this.db.prepare(`INSERT OR REPLACE INTO chunks (${cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.sDelete = this.db.prepare('DELETE FROM chunks WHERE content_id = ? AND idx = ?')
    this.sState = this.db.prepare('UPDATE chunks SET state = ? WHERE content_id = ? AND idx = ?')
    this.sVerified = this.db.prepare('UPDATE chunks SET verified_at = ? WHERE content_id = ? AND idx = ?')
    // keyset pagination over (content_id, idx)
    this.sAfter = this.db.prepare(`SELECT ${cols} FROM chunks WHERE content_id > ? OR (content_id = ? AND idx > ?) ORDER BY content_id, idx LIMIT ?`)
    this.sStats = this.db.prepare('SELECT state, count(*) AS n, coalesce(sum(size), 0) AS bytes FROM chunks GROUP BY state')
    this.sManGet = this.db.prepare('SELECT content_id, body, etag, updated_at FROM manifests WHERE content_id = ?')
    this.sManPut = this.db.prepare('INSERT OR REPLACE INTO manifests (content_id, body, etag, updated_at) VALUES (?, ?, ?, ?)')
    this.sManDel = this.db.prepare('DELETE FROM manifests WHERE content_id = ?')
    this.sManPage = this.db.prepare('SELECT content_id, etag, updated_at FROM manifests WHERE content_id > ? ORDER BY content_id LIMIT ?')
  }


  get(contentId: string, index: number): ChunkRow | undefined {
    const key = `${contentId}/${index}`
    let row = this.rows.get(key)
    if (row === undefined) {
      const r = this.sGet.get(contentId, index)
      if (!r) return undefined
      row = Object.freeze(fromRaw(r))
      this.rows.set(key, row)
    }
    return row
  }

  put(r: ChunkRow): void {
    this.rows.delete(`${r.contentId}/${r.index}`)
    this.sInsert.run(r.contentId, r.index, r.size, r.sha256, r.crcs, r.blockSize, r.state, r.createdAt, r.verifiedAt)
  }

  /** Inserts unless a row exists; returns the row that is there afterwards. Atomic. */
  putIfAbsent(r: ChunkRow): ChunkRow {
    return this.db.transaction(() => {
      const have = this.get(r.contentId, r.index)
      if (have && have.state === 'ok') return have
      this.put(r)
      return r
    })()
  }

  delete(contentId: string, index: number): boolean {
    this.rows.delete(`${contentId}/${index}`)
    return this.sDelete.run(contentId, index).changes > 0
  }

  setState(contentId: string, index: number, state: ChunkState): void {
    this.rows.delete(`${contentId}/${index}`)
    this.sState.run(state, contentId, index)
  }

  markVerified(contentId: string, index: number, at: number): void {
    this.rows.delete(`${contentId}/${index}`)
    this.sVerified.run(at, contentId, index)
  }

  /** Chunks after (contentId, index) in key order. Start with ('', -1). */
  page(afterId: string, afterIndex: number, limit: number): ChunkRow[] {
    return this.sAfter.all(afterId, afterId, afterIndex, limit).map(fromRaw)
  }

  stats(): { ok: number; corrupt: number; bytes: number } {
    const out = { ok: 0, corrupt: 0, bytes: 0 }
    for (const s of this.sStats.all()) {
      out[s.state] = s.n
      out.bytes += s.bytes
    }
    return out
  }

  getManifest(contentId: string): ManifestRow | undefined {
    const r = this.sManGet.get(contentId)
    return r && { contentId: r.content_id, body: r.body, etag: r.etag, updatedAt: r.updated_at }
  }

  putManifest(contentId: string, body: string, etag: string, at: number): void {
    this.sManPut.run(contentId, body, etag, at)
  }

  deleteManifest(contentId: string): boolean {
    return this.sManDel.run(contentId).changes > 0
  }

  manifestPage(after: string, limit: number): { contentId: string; etag: string; updatedAt: number }[] {
    return this.sManPage.all(after, limit).map(r => ({ contentId: r.content_id, etag: r.etag, updatedAt: r.updated_at }))
  }

  close(): void {
    this.rows.clear()
    if (this.db.open) this.db.close()
  }
}
