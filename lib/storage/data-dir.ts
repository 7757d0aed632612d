import { constants as fsc } from 'node:fs'
import { access, mkdir, open, opendir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { StorageError } from '../errors.js'

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
 *
 * The directories under it that a service writes into are checked the same
 * way (chunks/, tmp/, ...), except the per-title directories under chunks/,
 * which can be thousands: each gets an access(W_OK | X_OK) (one syscall, no
 * write), a few at a time (`ensureWritableSubdirs`). That misses what only a
 * write finds (a full disk, ACLs), but not the usual case, a directory left
 * read-only or owned by another user.
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

/** how many access() calls are in flight at once: libuv has four threads, and the service is not serving yet */
const PROBES = 16

/**
 * Checks that every directory directly under `dir` can take new files
 * (access W_OK | X_OK); throws naming the first that cannot. A missing `dir`
 * has none.
 */
export async function ensureWritableSubdirs(dir: string, what: string): Promise<void> {
  let batch: string[] = []
  const probe = async () => {
    const paths = batch
    batch = []
    const failed = (await Promise.all(paths.map(p => access(p, fsc.W_OK | fsc.X_OK).then(() => undefined, (err: unknown) => ({ p, err })))))
      .find(f => f !== undefined)
    if (failed) throw new StorageError(`${what} ${failed.p} is not writable: ${reason(failed.err)}`, { cause: failed.err })
  }
  let entries
  try {
    entries = await opendir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new StorageError(`cannot list ${dir}: ${reason(err)}`, { cause: err })
  }
  for await (const e of entries) {
    if (!e.isDirectory()) continue
    batch.push(join(dir, e.name))
    if (batch.length >= PROBES) await probe()
  }
  await probe()
}

/** `EACCES (permission denied)`: the code and what it means, without Node's repeat of the path. */
export function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  const text = /^[A-Z]+: ([^,]+)/.exec(e.message ?? '')?.[1]
  return e.code ? `${e.code}${text ? ` (${text})` : ''}` : String(e.message ?? err)
}
