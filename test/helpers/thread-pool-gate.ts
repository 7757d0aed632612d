import { execFileSync } from 'node:child_process'
import { closeSync, constants as fsc, mkdtempSync, openSync, rmSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * A disk that stops, for tests, without a seam in the code under test: every
 * thread of libuv's pool is made to wait in open(2) of a FIFO for reading,
 * which returns only once a writer opens the FIFO. Until `release()`, every
 * fs call of this process queues behind them (the disk tier's writes, reads
 * and renames), while sockets, SQLite (synchronous) and hashing carry on: the
 * edge fills and serves, its disk is merely stuck. Linux (mkfifo) only.
 *
 * The opens are queued before anything the test does next, and libuv's queue
 * is FIFO, so the gate holds from the moment `holdThreadPool` returns.
 */
export interface PoolGate {
  release(): Promise<void>
}

export function holdThreadPool(): PoolGate {
  const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-pool-gate-'))
  const fifos = Array.from({ length: threads }, (_, i) => join(dir, `gate-${i}`))
  for (const f of fifos) execFileSync('mkfifo', [f])
  const readers: Promise<FileHandle>[] = fifos.map(f => open(f, 'r'))
  let released: Promise<void> | undefined
  return {
    release() {
      released ??= (async () => {
        for (const f of fifos) {
          // ENXIO until the pool thread has reached open(2) for reading: wait for it
          for (;;) {
            try {
              closeSync(openSync(f, fsc.O_WRONLY | fsc.O_NONBLOCK))
              break
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err
              await new Promise(r => setTimeout(r, 1))
            }
          }
        }
        for (const r of readers) await (await r).close()
        rmSync(dir, { recursive: true, force: true })
      })()
      return released
    },
  }
}
