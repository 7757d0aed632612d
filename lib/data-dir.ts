import { mkdir, open, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { StorageError } from './errors.js'

/**
 * Every service checks at start that it can write where it keeps its state,
 * and refuses to start otherwise with one line naming the path: a read-only
 * directory found later, by the first write after "ready" (a scrub, a cache
 * fill, a trending snapshot), is an error at 3 a.m. instead of a failed start.
 *
 * The check writes for real (create, fsync, unlink a small file), because
 * permission bits alone do not say it all: a read-only mount, a full disk's
 * reserve, ACLs. Its name carries the pid, so two processes on one directory
 * do not trip over each other. The databases in the directory are checked
 * by lib/sqlite.ts, which writes to each one as it opens it.
 */
export async function ensureWritableDir(dir: string, what: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true })
  } catch (err) {
    throw new StorageError(`cannot create ${what} ${dir}: ${reason(err)}`, { cause: err })
  }
  const probe = join(dir, `.write-check-${process.pid}`)
  try {
    const fh = await open(probe, 'w')
    try {
      await fh.write('reelcdn\n')
      await fh.sync()
    } finally {
      await fh.close()
    }
    await unlink(probe)
  } catch (err) {
    await unlink(probe).catch(() => {})
    throw new StorageError(`${what} ${dir} is not writable: ${reason(err)}`, { cause: err })
  }
}

/** `EACCES (permission denied)`: the code and what it means, without Node's repeat of the path. */
function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  const text = /^[A-Z]+: ([^,]+)/.exec(e.message ?? '')?.[1]
  return e.code ? `${e.code}${text ? ` (${text})` : ''}` : String(e.message ?? err)
}
