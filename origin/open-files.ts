import type { FileHandle } from 'node:fs/promises'
import type { ChunkRow } from './chunk-index.js'

/**
 * Chunk files kept open between reads, so a range read costs one pread
 * instead of open + pread + close (three trips through the thread pool).
 *
 * Theory of operation. Entries are keyed by the chunk's file, whose name holds
 * its SHA-256: a chunk stored with other bytes is another key. An entry counts
 * the reads using it (`refs`); past `max` entries, the least recently used idle
 * ones (refs 0) are closed. Concurrent
 * first reads of one file share one open.
 *
 * `forget` retires an entry (the chunk was deleted, found corrupt, or its file
 * replaced by a repair): it leaves the map at once, so no later read gets it,
 * and its file is closed when its last current read releases it. Reads already
 * holding it finish on the inode they opened, which their index row (looked up
 * before the open) describes, and every block they send is still verified.
 */
interface Entry {
  key: string
  open: Promise<FileHandle>
  refs: number
  retired: boolean
}

export interface OpenFile {
  fh: FileHandle
  release(): void
}

export class OpenFiles {
  private readonly entries = new Map<string, Entry>() // Map order = LRU order of last release

  constructor(
    private readonly opener: (row: ChunkRow) => Promise<FileHandle>,
    private readonly keyOf: (row: ChunkRow) => string,
    private readonly max: number,
  ) {}

  async acquire(row: ChunkRow): Promise<OpenFile> {
    const key = this.keyOf(row)
    let e = this.entries.get(key)
    if (!e) {
      e = { key, open: this.opener(row), refs: 0, retired: false }
      this.entries.set(key, e)
      // a failed open (ENOENT…) must not stay cached
      e.open.catch(() => { if (this.entries.get(key) === e) this.entries.delete(key) })
    }
    e.refs++
    let fh: FileHandle
    try {
      fh = await e.open
    } catch (err) {
      e.refs--
      throw err
    }
    const entry = e
    let released = false
    return {
      fh,
      release: () => {
        if (released) return
        released = true
        this.release(entry, fh)
      },
    }
  }

  private release(e: Entry, fh: FileHandle): void {
    e.refs--
    if (e.retired) {
      if (e.refs === 0) void fh.close().catch(() => {})
      return
    }
    if (e.refs === 0 && this.entries.get(e.key) === e) {
      // most recently used last
      this.entries.delete(e.key)
      this.entries.set(e.key, e)
      this.trim()
    }
  }

  private trim(): void {
    if (this.entries.size <= this.max) return
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.max) break
      if (e.refs === 0) this.retire(e)
    }
  }

  private retire(e: Entry): void {
    if (this.entries.get(e.key) === e) this.entries.delete(e.key)
    e.retired = true
    if (e.refs === 0) void e.open.then(fh => fh.close()).catch(() => {})
  }

  /** The chunk's file must not be read through an old descriptor any more. */
  forget(row: ChunkRow): void {
    const e = this.entries.get(this.keyOf(row))
    if (e) this.retire(e)
  }

  /** Closes every idle file; files in use close when released. */
  closeAll(): void {
    for (const e of [...this.entries.values()]) this.retire(e)
  }

  get size(): number {
    return this.entries.size
  }
}
