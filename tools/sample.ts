import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { aptInstall } from '../lib/apt.js'
import type { Config } from '../lib/config.js'
import { ingestFile } from '../router/ingest/ingest-cli.js'

/**
 * The sample title `make run` ingests when the catalog is empty, so a fresh
 * cluster has something to play at once. A real H.264/AAC MP4 made by ffmpeg
 * (installed from Debian if missing, which needs root), with the moov atom up
 * front so a browser starts playing from the first range. Without ffmpeg the
 * sample is random bytes: still a title to curl, not one to watch.
 */
const run = promisify(execFile)

async function haveFfmpeg(): Promise<boolean> {
  if (existsSync('/usr/bin/ffmpeg')) return true
  try {
    await aptInstall(['ffmpeg'])
    return existsSync('/usr/bin/ffmpeg')
  } catch {
    return false
  }
}

export async function makeSample(dir: string): Promise<{ file: string; video: boolean }> {
  await mkdir(dir, { recursive: true })
  const mp4 = join(dir, 'sample.mp4')
  if (existsSync(mp4)) return { file: mp4, video: true }
  if (await haveFfmpeg()) {
    await run('/usr/bin/ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=duration=60:size=854x480:rate=25',
      '-f', 'lavfi', '-i', 'sine=frequency=440:duration=60', '-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '2M',
      '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', '+faststart', mp4], { timeout: 600_000 })
    return { file: mp4, video: true }
  }
  const bin = join(dir, 'sample.bin')
  if (!existsSync(bin)) await writeFile(bin, randomBytes(8 * 1024 * 1024))
  return { file: bin, video: false }
}

/** Ingests the sample through the router unless the catalog already has a title. Returns the contentId. */
export async function ensureSample(routerUrl: string, config: Readonly<Config>, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const dataDir = config.local.dataDir
  const tokenFile = config.router.tokenFile
  // the admin token also reads: the catalog needs it once the router has a read token
  const admin = env.REELCDN_ROUTER_TOKEN || (tokenFile ? await readFile(tokenFile, 'utf8').then(x => x.trim(), () => '') : '')
  const res = await request(`${routerUrl}/v1/content?limit=1`, { headers: admin ? { authorization: `Bearer ${admin}` } : {} })
  const body = (await res.body.json()) as { items?: { contentId: string }[] }
  if (body.items && body.items.length > 0) return body.items[0]!.contentId
  const { file, video } = await makeSample(join(dataDir, 'sample'))
  const id = video ? 'sample' : 'sample-bytes'
  await ingestFile(file, { id, title: video ? 'reelcdn sample (test pattern, 1 min)' : 'reelcdn sample (random bytes: ffmpeg was not available)',
    category: ['sample'], router: routerUrl, ...(tokenFile ? { tokenFile } : {}) }, env)
  return id
}
