import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TranscodeError } from './errors.js'

/**
 * Where a transcode keeps its files between runs: one directory per source
 * (its SHA-256), plan (rungs, sizes, frame rate, GOP, preset, segment
 * length, audio) and ffmpeg version, named by a hash of all of them, under
 * `ingest.workDir`. The same source with the same settings finds the same
 * directory, so a re-run after an interruption or a failed upload skips
 * what is already there; anything that changes the bytes gets another one.
 *
 * Layout: `plan.json` (what this directory is for, for people), `<rid>.mp4`
 * for each finished rendition (ffmpeg writes `<rid>.mp4.part`, renamed only
 * once its process exits cleanly, so a `.mp4` is always whole), `lock`
 * (the pid transcoding here), and after a publish only `published.json`
 * (the title and its renditions' digests: a re-run recognises the published
 * title without transcoding again).
 *
 * Two ingests of one source at once would write the same `.part` files, so
 * the lock holds the owner's pid; a lock whose process is gone is taken over.
 */
export interface Published {
  contentId: string
  renditions: { id: string; sha256: string }[]
}

export class WorkDir {
  private constructor(readonly dir: string) {}

  static key(parts: unknown): string {
    return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 20)
  }

  /** Opens (creating) the work directory for `parts` under `root`, and locks it for this process. */
  static async open(root: string, parts: unknown, describe: unknown): Promise<WorkDir> {
    const dir = join(root, WorkDir.key(parts))
    try {
      await mkdir(dir, { recursive: true })
    } catch (err) {
      throw new TranscodeError(`cannot make the work directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (ingest.workDir, --work-dir)`, { cause: err })
    }
    const wd = new WorkDir(dir)
    await wd.lock()
    await writeFile(join(dir, 'plan.json'), JSON.stringify(describe, null, 2) + '\n')
    return wd
  }

  path(id: string): string {
    return join(this.dir, `${id}.mp4`)
  }

  async finished(id: string): Promise<boolean> {
    try {
      return (await stat(this.path(id))).isFile()
    } catch { return false }
  }

  /** `<id>.mp4.part` → `<id>.mp4`: the rendition is whole. */
  async finish(id: string): Promise<void> {
    await rename(`${this.path(id)}.part`, this.path(id))
  }

  async published(): Promise<Published | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, 'published.json'), 'utf8')) as Published
    } catch { return undefined }
  }

  /** After a publish: the renditions are in the cluster; keep only what recognises them. */
  async markPublished(p: Published, keepFiles: boolean): Promise<void> {
    if (!keepFiles) await this.clear()
    else await this.unlock()
    await mkdir(this.dir, { recursive: true })
    await writeFile(join(this.dir, 'published.json'), JSON.stringify(p, null, 2) + '\n')
  }

  async forgetPublished(): Promise<void> {
    await rm(join(this.dir, 'published.json'), { force: true })
  }

  /** Everything in it, lock included. */
  async clear(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true })
  }

  async unlock(): Promise<void> {
    await rm(join(this.dir, 'lock'), { force: true })
  }

  private async lock(): Promise<void> {
    const file = join(this.dir, 'lock')
    for (let i = 0; i < 2; i++) {
      try {
        await writeFile(file, String(process.pid), { flag: 'wx' })
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const pid = Number(await readFile(file, 'utf8').catch(() => ''))
      if (pid > 0 && pid !== process.pid && alive(pid)) {
        throw new TranscodeError(`another ingest (pid ${pid}) is transcoding this source with these settings in ${this.dir}: wait for it, or stop it`)
      }
      await rm(file, { force: true })
    }
    throw new TranscodeError(`cannot lock the work directory ${this.dir}`)
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
