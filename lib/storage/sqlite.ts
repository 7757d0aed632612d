import Database from 'better-sqlite3'
import { StorageError } from '../errors.js'

/**
 * Opens one of our SQLite files (the shard's chunk index, the edge's disk
 * index, the router's trending and sessions stores) the same way: WAL, fsync
 * at checkpoints only (a process crash loses nothing; a power cut may lose the
 * last transactions, which every caller tolerates or repeats), a busy timeout,
 * and numbered migrations. `migrations[i]` takes the schema from version i to
 * i+1, each in a transaction with its version bump; a file from a newer build
 * is refused rather than misread. Any failure is a StorageError naming `what`
 * and the file, including a file that cannot be written: every open writes.
 */
export function openDatabase(file: string, what: string, migrations: readonly string[]): Database.Database {
  let db: Database.Database | undefined
  try {
    db = new Database(file)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.pragma('busy_timeout = 5000')
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
    const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get()
    const have = row ? Number(row.value) : 0
    if (!Number.isInteger(have) || have < 0) throw new Error(`unknown schema version ${row?.value}`)
    if (have > migrations.length) throw new Error(`schema version ${have} is newer than this build's ${migrations.length}`)
    const bump = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)")
    for (let v = have; v < migrations.length; v++) {
      const conn = db
      conn.transaction(() => {
        conn.exec(migrations[v]!)
        bump.run(String(v + 1))
      })()
    }
    // a write now, even when there was nothing to migrate: SQLite opens a file it cannot write read-only without a
    // word, and the first write after start-up (a scrub, a snapshot) would be the first to find out
    if (have === migrations.length) bump.run(String(have))
    return db
  } catch (err) {
    db?.close()
    throw new StorageError(`cannot open ${what} ${file}: ${(err as Error).message}`, { cause: err })
  }
}
