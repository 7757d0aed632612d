import { createReadStream } from 'node:fs'
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../lib/logger.js'
import { isShardKey } from '../lib/ids.js'
import type { ChunkIndex, ChunkRow } from './chunk-index.js'
import type { ChunkStore } from './chunk-store.js'
import { BLOCK_SIZE, BlockHasher } from '../lib/integrity/block-hasher.js'

/**
 * Start-up reconciliation, run before the shard reports ready. After a kill -9
 * at any moment the disk can hold: temp files of unfinished uploads (deleted),
 * index rows whose file is gone (dropped), and complete files whose row was
 * never written (verified against the digest in their name, then adopted, or
 * quarantined). Rows and files that agree are served as they are: a row is
 * only written after its file is fsynced, and reads verify every block.
 */
export interface RecoveryReport {
  tmpRemoved: number
  rowsDropped: number
  adopted: number
  quarantined: number
}

const CHUNK_FILE = /^(0|[1-9][0-9]{0,9})-([0-9a-f]{64})\.chunk$/

export async function recover(index: ChunkIndex, store: ChunkStore, logger: Logger): Promise<RecoveryReport> {
  const report: RecoveryReport = { tmpRemoved: 0, rowsDropped: 0, adopted: 0, quarantined: 0 }
  for (const f of await readdir(store.tmpDir)) {
    await rm(join(store.tmpDir, f), { force: true, recursive: true })
    report.tmpRemoved++
  }

  // rows without a (whole) file
  const known = new Set<string>()
  let afterId = ''
  let afterIndex = -1
  for (;;) {
    const rows = index.page(afterId, afterIndex, 1000)
    if (rows.length === 0) break
    for (const row of rows) {
      const path = store.path(row.contentId, row.index, row.sha256)
      const st = await stat(path).catch(() => undefined)
      if (!st || st.size !== row.size) {
        index.delete(row.contentId, row.index)
        if (st) await quarantine(store, path, `${row.contentId}-${row.index}-${row.sha256}`)
        report.rowsDropped++
        logger.warn({ chunk: `${row.contentId}/${row.index}`, size: st?.size }, 'recovery: index row without a whole file, dropped')
      } else known.add(path)
    }
    const last = rows[rows.length - 1]!
    afterId = last.contentId
    afterIndex = last.index
  }

  // files without a row
  for (const dir of await readdir(store.chunksDir)) {
    const dirPath = join(store.chunksDir, dir)
    for (const f of await readdir(dirPath).catch(() => [] as string[])) {
      const path = join(dirPath, f)
      if (known.has(path)) continue
      const m = CHUNK_FILE.exec(f)
      const row = m && isShardKey(dir) ? await verifyFile(path, dir, Number(m[1]), m[2]!) : undefined
      const existing = m ? index.get(dir, Number(m[1])) : undefined
      if (row && !existing) {
        index.put(row)
        report.adopted++
        logger.warn({ chunk: `${dir}/${row.index}` }, 'recovery: verified file without an index row, adopted')
      } else {
        await quarantine(store, path, `${dir}-${f}`)
        report.quarantined++
        logger.warn({ path }, 'recovery: unverifiable or superseded file, quarantined')
      }
    }
  }
  return report
}

/** Hashes a whole file; returns its index row if the SHA-256 matches the one in its name. */
export async function verifyFile(path: string, contentId: string, index: number, sha256: string): Promise<ChunkRow | undefined> {
  const hasher = new BlockHasher()
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) hasher.update(piece)
  const { sha256: got, crcs, size } = hasher.finish()
  if (got !== sha256) return undefined
  const now = Date.now()
  return { contentId, index, size, sha256, crcs, blockSize: BLOCK_SIZE, state: 'ok', createdAt: now, verifiedAt: now }
}

async function quarantine(store: ChunkStore, path: string, name: string): Promise<void> {
  await mkdir(store.quarantineDir, { recursive: true })
  await rename(path, join(store.quarantineDir, `${Date.now()}-${name}`)).catch(() => rm(path, { force: true }))
}
