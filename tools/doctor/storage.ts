import { constants as fsc } from 'node:fs'
import { access, readdir, stat, statfs } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { ensureWritableDir, ensureWritableSubdirs } from '../../lib/storage/data-dir.js'
import { formatBytes } from '../../lib/config/units.js'
import { fail, ok, reason, warn, type Finding } from './finding.js'

/**
 * A role's data directory and the space on its filesystem.
 *
 * A directory that exists is checked the way the service checks it at start
 * (lib/storage/data-dir.ts: a real write, then every title directory), so doctor and
 * the service cannot disagree. One that does not exist yet is not created
 * (doctor may run as another user, and a directory it made would belong to
 * that user): its nearest existing parent must let this user create it.
 *
 * Space is what this user may still write (statfs bavail) against what the
 * role will use: the edge's disk tier fills to edge.diskBytes (what its
 * chunks hold already counts as available to it), a shard refuses writes
 * below origin.reserveBytes, the router and an ingest's work dir need room
 * for SQLite and renditions.
 */
export interface DirNeed {
  /** the setting that names it, e.g. edge.dataDir */
  setting: string
  dir: string
  /** directories under it the service writes into */
  subdirs: string[]
}

export async function checkDataDir(need: DirNeed): Promise<Finding> {
  const check = 'data-dir'
  const dir = resolve(need.dir)
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => err)
  if (st instanceof Error) {
    if (st.code !== 'ENOENT') return fail(check, `${need.setting} ${dir} cannot be read: ${reason(st)}`, `fix the path or its permissions, or set ${need.setting}`)
    const parent = await existingParent(dir)
    try {
      if (!(await stat(parent)).isDirectory()) throw Object.assign(new Error(`${parent} is not a directory`), { code: 'ENOTDIR' })
      await access(parent, fsc.W_OK | fsc.X_OK)
    } catch (err) {
      return fail(check, `${need.setting} ${dir} does not exist and cannot be created: ${parent} ${reason(err)}`,
        `create ${dir} owned by the service's user (the systemd units' StateDirectory= does), or set ${need.setting}`)
    }
    return warn(check, `${need.setting} ${dir} does not exist yet; the service will create it (${parent} is writable)`)
  }
  if (!st.isDirectory()) return fail(check, `${need.setting} ${dir} is not a directory`, `set ${need.setting} to a directory`)
  try {
    await ensureWritableDir(dir, need.setting)
    for (const sub of need.subdirs) {
      const p = join(dir, sub)
      if (await stat(p).then(() => true, () => false)) await ensureWritableDir(p, need.setting)
    }
    if (need.subdirs.includes('chunks')) await ensureWritableSubdirs(join(dir, 'chunks'), `${need.setting}'s title directory`)
  } catch (err) {
    return fail(check, (err as Error).message, `chown -R the service's user ${dir} (and check the mount is read-write), or set ${need.setting}`)
  }
  return ok(check, `${need.setting} ${dir} takes writes`)
}

export async function existingParent(p: string): Promise<string> {
  let d = resolve(p)
  while (!(await stat(d).then(() => true, () => false)) && dirname(d) !== d) d = dirname(d)
  return d
}

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(await existingParent(dir))
  return s.bavail * s.bsize
}

/** Bytes in the files under `dir` (the edge's cached chunks), 0 if it is missing. */
export async function bytesUnder(dir: string): Promise<number> {
  let total = 0
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += await bytesUnder(p)
    else if (e.isFile()) total += (await stat(p).catch(() => ({ size: 0 }))).size
  }
  return total
}

export interface SpaceNeed {
  /** the setting the space is for, named in the message */
  setting: string
  dir: string
  /** bytes the role must be able to write from now on */
  bytes: number
  /** what happens without them, and what to change */
  short: string
  fix: string
  /** below the need, only a warning */
  soft?: boolean
  /** bytes the role holds already that count toward `bytes` (the edge's cache) */
  held?: number
}

export async function checkSpace(need: SpaceNeed): Promise<Finding> {
  const check = 'disk-space'
  let free: number
  try {
    free = await freeBytes(need.dir)
  } catch (err) {
    return fail(check, `cannot read the free space of ${need.dir}: ${reason(err)}`, `fix ${need.setting}`)
  }
  const have = free + (need.held ?? 0)
  const held = need.held ? ` + ${formatBytes(need.held)} it holds already` : ''
  if (have < need.bytes) {
    const msg = `${need.setting}: ${formatBytes(free)} free${held} on the filesystem of ${need.dir}, ${formatBytes(need.bytes)} needed: ${need.short}`
    return need.soft ? warn(check, msg, need.fix) : fail(check, msg, need.fix)
  }
  return ok(check, `${formatBytes(free)} free${held} on the filesystem of ${need.dir}, ${formatBytes(need.bytes)} needed for ${need.setting}`)
}
