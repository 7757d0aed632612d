import { randomBytes } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import { mkdir, open, rename, rm, unlink, type FileHandle } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { crc32c } from '../lib/integrity/crc32c.js'
import { BLOCK_SIZE, BlockHasher } from '../lib/integrity/block-hasher.js'
import { CorruptChunkError, fsFailure, NotFoundError, PayloadTooLargeError, StorageError } from '../lib/errors.js'
import { chunkName } from '../lib/ids.js'
import type { ChunkRow } from './chunk-index.js'

/**
 * Chunk bytes on disk. Layout under the data directory:
 *   chunks/<contentId>/<index>-<sha256>.chunk   complete, verified chunks
 *   tmp/<random>.part                            uploads in progress (deleted at start-up)
 *   quarantine/                                  files that failed verification at recovery
 * The digest in the file name lets recovery verify a file that lost its index
 * row (a crash between rename and insert) without any other record.
 *
 * Integrity: every 64 KiB block has a CRC32C in the index (as GFS does), so a
 * range read verifies only the blocks it touches; the whole-chunk SHA-256 is
 * the end-to-end digest that the router and edges check.
 */
export { BLOCK_SIZE } from '../lib/integrity/block-hasher.js'

export interface Received {
  tmpPath: string
  size: number
  sha256: string
  crcs: Buffer
}

export class ChunkStore {
  readonly chunksDir: string
  readonly tmpDir: string
  readonly quarantineDir: string

  constructor(readonly dataDir: string) {
    this.chunksDir = join(dataDir, 'chunks')
    this.tmpDir = join(dataDir, 'tmp')
    this.quarantineDir = join(dataDir, 'quarantine')
  }

  async init(): Promise<void> {
    for (const d of [this.chunksDir, this.tmpDir, this.quarantineDir]) await mkdir(d, { recursive: true })
  }

  path(contentId: string, index: number, sha256: string): string {
    return join(this.chunksDir, contentId, `${index}-${sha256}.chunk`)
  }

  /**
   * Streams an upload into a temp file while hashing it, then fsyncs. Nothing
   * is visible until `commit`; on any failure the temp file is gone.
   */
  async receive(body: AsyncIterable<Buffer>, maxBytes: number, what = 'an upload'): Promise<Received> {
    const tmpPath = join(this.tmpDir, `${randomBytes(12).toString('hex')}.part`)
    let fh: FileHandle | undefined
    try {
      fh = await open(tmpPath, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644)
      const hasher = new BlockHasher()
      for await (const piece of body) {
        if (hasher.size + piece.length > maxBytes) throw new PayloadTooLargeError(`chunk body exceeds the chunk size of ${maxBytes} bytes`)
        hasher.update(piece)
        await writeAll(fh, piece)
      }
      await fh.sync()
      await fh.close()
      fh = undefined
      return { tmpPath, ...hasher.finish() }
    } catch (err) {
      await fh?.close().catch(() => {})
      await rm(tmpPath, { force: true }).catch(() => {})
      // a disk errno (EIO, EROFS, EFBIG, EDQUOT, ENOSPC) is ours to name; the body's own failure (the client left) is not
      throw fsFailure(err, `storing ${what}`)
    }
  }

  /** Moves a verified temp file into place, durably. */
  async commit(tmpPath: string, contentId: string, index: number, sha256: string): Promise<void> {
    const dest = this.path(contentId, index, sha256)
    await mkdir(dirname(dest), { recursive: true })
    await rename(tmpPath, dest)
    await fsyncDir(dirname(dest))
  }

  async discard(tmpPath: string): Promise<void> {
    await rm(tmpPath, { force: true })
  }

  async remove(row: Pick<ChunkRow, 'contentId' | 'index' | 'sha256'>): Promise<void> {
    await unlink(this.path(row.contentId, row.index, row.sha256)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw new StorageError(`cannot delete ${chunkName(row.contentId, row.index)}: ${e.message}`, { cause: e })
    })
  }

  async openChunk(row: ChunkRow): Promise<FileHandle> {
    try {
      return await open(this.path(row.contentId, row.index, row.sha256), 'r')
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      if (e.code === 'ENOENT') throw new NotFoundError(`chunk ${chunkName(row.contentId, row.index)} (file missing)`, { cause: e })
      throw new StorageError(`cannot open ${chunkName(row.contentId, row.index)}: ${e.message}`, { cause: e })
    }
  }

  /**
   * Reads bytes [from, to) of a chunk, where both are block-aligned (or `to` is
   * the chunk's end), and verifies each block's CRC. Throws CorruptChunkError on
   * the first block that does not match: those bytes are never returned.
   */
  async readVerified(fh: FileHandle, row: ChunkRow, from: number, to: number): Promise<Buffer> {
    return this.readVerifiedInto(fh, row, Buffer.allocUnsafeSlow(to - from), from, to)
  }

  /** As `readVerified`, into the start of `buf` (at least `to - from` bytes); returns the part filled. */
  async readVerifiedInto(fh: FileHandle, row: ChunkRow, buf: Buffer, from: number, to: number): Promise<Buffer> {
    const len = to - from
    let got = 0
    while (got < len) {
      const { bytesRead } = await fh.read(buf, got, len - got, from + got)
      if (bytesRead === 0) throw new CorruptChunkError(chunkName(row.contentId, row.index), `file is short: ended at ${from + got} of ${row.size} bytes`)
      got += bytesRead
    }
    const piece = len === buf.length ? buf : buf.subarray(0, len)
    verifyBlocks(row, piece, from)
    return piece
  }
}

/** Checks every whole block of `buf`, which starts at block-aligned offset `from` of the chunk. */
export function verifyBlocks(row: ChunkRow, buf: Buffer, from: number): void {
  for (let off = 0; off < buf.length; off += BLOCK_SIZE) {
    const block = (from + off) / BLOCK_SIZE
    const want = row.crcs.readUInt32BE(4 * block)
    if (crc32c(buf.subarray(off, Math.min(off + BLOCK_SIZE, buf.length))) !== want)
      throw new CorruptChunkError(chunkName(row.contentId, row.index), `block ${block} (bytes ${from + off}-) fails its CRC32C`)
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0
  while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
