import { open, type FileHandle } from 'node:fs/promises'

/**
 * Open chunk files kept for reuse: opening and closing a file for every range
 * read costs about as much as reading a megabyte of it from the page cache.
 * Each handle carries the chunk's block CRCs, so a hit needs no SQLite lookup.
 *
 * Ownership: a handle is shared by every request reading its chunk and
 * reference-counted; it is closed only when no request holds it and it is
 * either the least recently used beyond `max`, or its chunk was removed
 * (`drop`). A removed chunk's file may still be read through a held handle:
 * its bytes are still the right ones (the key names the digest) and every read
 * verifies them. Concurrent first opens of one file share one `open`.
 */
export interface ReadHandle {
  readonly key: string
  readonly fh: FileHandle
  readonly crcs: Buffer
  refs: number
  dropped: boolean
}

export class HandleCache {
  /** Map order is recency: a handle is re-inserted on each use */
  private readonly idle = new Map<string, ReadHandle>()
  private readonly held = new Map<string, ReadHandle>()
  private readonly opening = new Map<string, Promise<ReadHandle | undefined>>()
  /** chunks dropped while their file was being opened: the handle is born dropped, and closes at its last release */
  private readonly droppedWhileOpening = new Set<string>()

  constructor(private readonly max: number) {}

  get size(): number {
    return this.idle.size + this.held.size
  }

  /** A handle on `path`, or undefined if the file cannot be opened. Pair with `release`. */
  async acquire(key: string, path: string, crcs: () => Buffer | undefined): Promise<ReadHandle | undefined> {
    let h = this.held.get(key) ?? this.idle.get(key)
    if (h === undefined) {
      let p = this.opening.get(key)
      if (p === undefined) {
        p = this.openFile(key, path, crcs).finally(() => { this.opening.delete(key); this.droppedWhileOpening.delete(key) })
        this.opening.set(key, p)
      }
      h = await p
      if (h === undefined) return undefined
    }
    if (h.refs++ === 0) {
      this.idle.delete(key)
      this.held.set(key, h)
    }
    return h
  }

  release(h: ReadHandle): void {
    if (--h.refs > 0) return
    this.held.delete(h.key)
    if (h.dropped) return void h.fh.close().catch(() => {})
    this.idle.set(h.key, h)
    this.trim()
  }

  /** The chunk is gone: close its handle now, or when the last reader releases it (one still being opened, too). */
  drop(key: string): void {
    const h = this.held.get(key) ?? this.idle.get(key)
    if (h === undefined) {
      if (this.opening.has(key)) this.droppedWhileOpening.add(key)
      return
    }
    h.dropped = true
    if (h.refs === 0) {
      this.idle.delete(key)
      void h.fh.close().catch(() => {})
    }
  }

  async closeAll(): Promise<void> {
    for (const h of [...this.idle.values(), ...this.held.values()]) await h.fh.close().catch(() => {})
    this.idle.clear()
    this.held.clear()
  }

  private async openFile(key: string, path: string, crcs: () => Buffer | undefined): Promise<ReadHandle | undefined> {
    const c = crcs()
    if (c === undefined) return undefined
    const fh = await open(path, 'r').catch(() => undefined)
    if (fh === undefined) return undefined
    const h: ReadHandle = { key, fh, crcs: c, refs: 0, dropped: this.droppedWhileOpening.has(key) }
    this.idle.set(key, h) // trimmed on release, never before its first reader has it
    return h
  }

  private trim(): void {
    for (const [key, h] of this.idle) {
      if (this.size <= this.max) break
      this.idle.delete(key)
      void h.fh.close().catch(() => {})
    }
  }
}
