import { constants as fsc } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import type { Logger } from '../../lib/logger.js'
import { pageAligned } from '../../lib/net/zero-copy.js'

/**
 * Writing a chunk's file for the disk tier: from the chunk's memory straight
 * to the device (O_DIRECT) where it can, else through the page cache
 * (issue 16).
 *
 * Why: a chunk written through the page cache is copied into page-cache
 * pages the kernel allocates, then written back and fsynced from them. On
 * the fill row that was most of what an edge spent besides the fill itself:
 * 1.3–1.6 CPU-seconds of system time on the pool threads per 512 MiB filled
 * (per-thread /proc times, 2026-12-06), since the pages of a page cache that
 * grows with every new chunk are fresh memory, and on a VM fresh memory is
 * expensive to touch. The same 512 MiB written with O_DIRECT from memory
 * already mapped took 0.01 s of system time against 0.15 through a warm page
 * cache (docs/benchmarks.md). And the page-cache copy bought nothing: the
 * chunk just written is in the RAM tier, or was just sent to its player.
 * nginx's `directio` and Traffic Server's raw disks make the same choice.
 *
 * Theory of operation. O_DIRECT needs the memory, the file offset and the
 * length aligned to the device's logical block (512 or 4096 bytes). Chunk
 * memory from the splice addon is page-aligned (`pageAligned`), and a
 * chunk's length is a multiple of 4096 except, usually, a file's last chunk:
 * a chunk with both is written direct, any other through the page cache, as
 * before. Either way the file is fsynced before the disk tier indexes it
 * (the crash rules in disk-tier.ts do not change). Reads of the chunk later
 * go through the page cache as always: a disk hit reads it from the device
 * once, then from memory.
 *
 * A file system that refuses O_DIRECT (tmpfs before Linux 6.6, some network
 * file systems: EINVAL at the open, said once at info; at the first write,
 * said at warn) turns it off for the tier, and that chunk is written
 * through the page cache. An EINVAL later in a direct write (a short write
 * left an unaligned remainder) writes that chunk again through the page
 * cache and leaves direct writes on. Any other error is the write's, as
 * before. (Some file systems take O_DIRECT and still pass the bytes
 * through their cache: ext4 with data=journal, older ZFS; those count as
 * direct.)
 */

/** the alignment asked of a direct write's memory and length: the largest logical block in use */
const DIRECT_ALIGN = 4096

/** A chunk file opened for its one write. */
export interface ChunkFileOut {
  fh: FileHandle
  path: string
  direct: boolean
}

export class ChunkFileWriter {
  private on: boolean
  /** bytes written each way since start */
  readonly written = { direct: 0, page_cache: 0 }

  /** `direct`: edge.diskDirectWrites; `openFile`: fs/promises' open (a test gives one that refuses) */
  constructor(direct: boolean, private readonly logger: Logger, private readonly openFile: typeof open = open) {
    this.on = direct
  }

  /** whether direct writes are still on (the setting, and no refusal since) */
  get direct(): boolean {
    return this.on
  }

  /** Creates `path` (it must not exist) for `buf`'s bytes: direct when `buf` can be written so. */
  async open(path: string, buf: Buffer): Promise<ChunkFileOut> {
    if (this.on && pageAligned(buf) && buf.length % DIRECT_ALIGN === 0) {
      try {
        return { fh: await this.openFile(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_DIRECT, 0o644), path, direct: true }
      } catch (err) {
        if (!refused(err)) throw err
        this.refuse(err, 'open')
        // Linux creates the file before it refuses O_DIRECT: the path may exist now (a temporary name no one else uses)
        return { fh: await this.openFile(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o644), path, direct: false }
      }
    }
    return { fh: await this.openFile(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644), path, direct: false }
  }

  /**
   * Writes `buf` whole, fsyncs and closes. A direct write refused with EINVAL
   * is done again, from the start, through the page cache; refused before
   * any byte went (the file system's answer to O_DIRECT, not a short write's
   * unaligned remainder), direct writes turn off.
   */
  async write(out: ChunkFileOut, buf: Buffer): Promise<void> {
    const at = { off: 0 }
    try {
      await writeClose(out.fh, buf, at)
    } catch (err) {
      if (!out.direct || !refused(err)) throw err
      if (at.off === 0) this.refuse(err, 'write')
      out.fh = await this.openFile(out.path, fsc.O_WRONLY | fsc.O_TRUNC)
      out.direct = false
      await writeClose(out.fh, buf, { off: 0 })
    }
    this.written[out.direct ? 'direct' : 'page_cache'] += buf.length
  }

  /** Direct writes off for good: expected at the open on some file systems (info); at the first write, a surprise worth a look (warn). */
  private refuse(err: unknown, at: 'open' | 'write'): void {
    if (!this.on) return
    this.on = false
    const msg = 'the disk tier\'s file system refuses direct writes (O_DIRECT): chunks are written through the page cache'
    if (at === 'open') this.logger.info({ why: (err as Error).message, at }, msg)
    else this.logger.warn({ why: (err as Error).message, at }, msg)
  }
}

/** Writes `buf` from `at.off` on, fsyncs and closes `fh`; a failed write closes it too, and its error is the one thrown. */
async function writeClose(fh: FileHandle, buf: Buffer, at: { off: number }): Promise<void> {
  try {
    while (at.off < buf.length) at.off += (await fh.write(buf, at.off, buf.length - at.off)).bytesWritten
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => {})
    throw err
  }
  await fh.close()
}

function refused(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EINVAL'
}
