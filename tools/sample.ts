import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { aptInstall } from '../lib/apt.js'
import type { Config } from '../lib/config/config.js'
import { ingestFile } from '../router/ingest/ingest-cli.js'
import { ingestAdaptive } from '../router/ingest/ingest-adaptive.js'

/**
 * The sample title `make run` ingests when the catalog is empty, so a fresh
 * cluster has something to play at once. A real H.264/AAC MP4 made by ffmpeg
 * (installed from Debian if missing, which needs root), with the moov atom up
 * front so a browser starts playing from the first range. Without ffmpeg the
 * sample is random bytes: still a title to curl, not one to watch.
 *
 * Beside it, an adaptive sample (`sample-abr`, docs/abr.md): 30 s of test
 * pattern and tone, transcoded here into the `sample` ladder (three rungs up
 * to 480p) with `ingest.preset`, so the first start stays within a minute on
 * two cores; later starts find it published and do nothing. Its transcode
 * keeps its work directory in <data-dir>/ingest, so a start interrupted
 * mid-transcode resumes. A cluster whose router cannot take it (an older
 * router) still starts: the failure is one line, and the single-file sample
 * plays as before.
 */
export const ADAPTIVE_SAMPLE = 'sample-abr'
const ADAPTIVE_SECONDS = 30
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

/** The adaptive sample's source: short, so its three rungs transcode in seconds. */
export async function makeAdaptiveSource(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  const mp4 = join(dir, `sample-abr-${ADAPTIVE_SECONDS}s.mp4`)
  if (existsSync(mp4)) return mp4
  await run('/usr/bin/ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=duration=${ADAPTIVE_SECONDS}:size=854x480:rate=25`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${ADAPTIVE_SECONDS}`, '-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '2M',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', '+faststart', `${mp4}.tmp.mp4`], { timeout: 600_000 })
  await rename(`${mp4}.tmp.mp4`, mp4)
  return mp4
}

export interface Samples {
  /** the single-file sample, or the catalog's first title */
  single?: string
  /** the adaptive sample, once published */
  adaptive?: string
}

/**
 * Ingests the samples through the router into an empty catalog, or the
 * adaptive one into a catalog that has make run's own single-file sample
 * (a data dir from before adaptive titles); an operator's catalog gets
 * nothing. Returns their ids.
 */
export async function ensureSample(routerUrl: string, config: Readonly<Config>, env: NodeJS.ProcessEnv): Promise<Samples> {
  const dataDir = config.local.dataDir
  const tokenFile = config.router.tokenFile
  // the admin token also reads: the catalog needs it once the router has a read token
  const admin = env.REELCDN_ROUTER_TOKEN || (tokenFile ? await readFile(tokenFile, 'utf8').then(x => x.trim(), () => '') : '')
  const auth = admin ? { authorization: `Bearer ${admin}` } : {}
  const res = await request(`${routerUrl}/v1/content?limit=1`, { headers: auth })
  const body = (await res.body.json()) as { items?: { contentId: string }[] }
  const first = body.items?.[0]?.contentId
  const has = async (id: string) => {
    const r = await request(`${routerUrl}/v1/content/${id}/meta`, { headers: auth })
    await r.body.dump()
    return r.statusCode === 200
  }
  const out: Samples = {}
  if (first === undefined) {
    const { file, video } = await makeSample(join(dataDir, 'sample'))
    const id = video ? 'sample' : 'sample-bytes'
    await ingestFile(file, { id, title: video ? 'reelcdn sample (test pattern, 1 min)' : 'reelcdn sample (random bytes: ffmpeg was not available)',
      category: ['sample'], router: routerUrl, ...(tokenFile ? { tokenFile } : {}) }, env)
    out.single = id
  } else if (await has('sample')) {
    out.single = 'sample'
  } else if (first !== ADAPTIVE_SAMPLE) {
    // an operator's catalog: its first title, and no sample added to it
    out.single = first
  }
  if (await has(ADAPTIVE_SAMPLE)) return { ...out, adaptive: ADAPTIVE_SAMPLE }
  if (out.single !== 'sample' || !existsSync('/usr/bin/ffmpeg')) return out
  try {
    const source = await makeAdaptiveSource(join(dataDir, 'sample'))
    await ingestAdaptive(source, {
      id: ADAPTIVE_SAMPLE, renditions: 'sample', title: `reelcdn adaptive sample (test pattern, ${ADAPTIVE_SECONDS} s, 3 rungs up to 480p)`,
      category: ['sample'], router: routerUrl, ...(tokenFile ? { tokenFile } : {}),
      overrides: { ingest: { ...config.ingest, workDir: join(dataDir, 'ingest') } },
    }, env)
    out.adaptive = ADAPTIVE_SAMPLE
  } catch (err) {
    process.stderr.write(`could not ingest the adaptive sample ${ADAPTIVE_SAMPLE}: ${(err as Error).message}\n`)
  }
  return out
}
