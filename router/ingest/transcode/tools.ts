import { execFile } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { aptInstall } from '../../../lib/apt.js'
import { ToolMissingError } from './errors.js'

/**
 * Finds ffmpeg and ffprobe for a transcode. `ingest.ffmpeg` names the
 * binary (ffprobe is its neighbour); empty means Debian's /usr/bin/ffmpeg,
 * installed with apt-get when it is missing, as the sample does (which needs
 * root or sudo). A configured path is never installed over: if it is wrong
 * the error says so. The version line goes into the work directory's key
 * (work-dir.ts): another ffmpeg makes other bytes, so it must not resume
 * from this one's renditions.
 */
const run = promisify(execFile)

export interface Tools {
  ffmpeg: string
  ffprobe: string
  /** `ffmpeg version …` (the first line of -version) */
  version: string
}

const DEFAULT = '/usr/bin/ffmpeg'
const found = new Map<string, Promise<Tools>>()

async function executable(p: string): Promise<boolean> {
  try {
    await access(p, constants.X_OK)
    return true
  } catch { return false }
}

export function findTools(configured: string, log: (line: string) => void = () => {}): Promise<Tools> {
  const key = configured || DEFAULT
  let p = found.get(key)
  if (!p) {
    p = locate(configured, log)
    found.set(key, p)
    p.catch(() => found.delete(key))
  }
  return p
}

async function locate(configured: string, log: (line: string) => void): Promise<Tools> {
  const ffmpeg = configured || DEFAULT
  if (!(await executable(ffmpeg))) {
    if (configured) throw new ToolMissingError(`ingest.ffmpeg is ${configured}, which is not an executable file`)
    try {
      await aptInstall(['ffmpeg'], { log })
    } catch (err) {
      throw new ToolMissingError(`transcoding needs ffmpeg, which is not at ${DEFAULT}, and installing it failed ` +
        `(${(err as Error).message.split('\n')[0]}): install Debian's ffmpeg package, or set ingest.ffmpeg to its path`, { cause: err })
    }
    if (!(await executable(ffmpeg))) throw new ToolMissingError(`apt-get installed ffmpeg, but ${ffmpeg} is still missing`)
  }
  const ffprobe = join(dirname(ffmpeg), 'ffprobe')
  if (!(await executable(ffprobe))) throw new ToolMissingError(`ffprobe is not next to ${ffmpeg} (${ffprobe}): it is needed to read the source`)
  let version: string
  let encoders: string
  try {
    version = (await run(ffmpeg, ['-hide_banner', '-version'])).stdout.split('\n')[0]!.trim()
    encoders = (await run(ffmpeg, ['-hide_banner', '-encoders'], { maxBuffer: 4 * 1024 * 1024 })).stdout
  } catch (err) {
    throw new ToolMissingError(`${ffmpeg} does not run: ${(err as Error).message.split('\n')[0]}`, { cause: err })
  }
  for (const enc of ['libx264', 'aac']) {
    if (!new RegExp(`^\\s*\\S+\\s+${enc}\\s`, 'm').test(encoders)) throw new ToolMissingError(`${ffmpeg} has no ${enc} encoder: use a build with it (Debian's has)`)
  }
  return { ffmpeg, ffprobe, version }
}
