import { Command } from 'commander'
import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { fail } from '../../lib/cli.js'
import { configuredUrls, loadConfig } from '../../lib/config/config.js'
import { loadSecret } from '../../lib/security/auth.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { BadRequestError, ConflictError } from '../../lib/errors.js'
import { Progress } from '../../lib/progress.js'
import { parseContentId } from '../../lib/ids.js'
import { asciiJson, authHeader, checkAdmin, checkFile, fileError, hashFile, putBody, routerError, titleMeta, unreachable } from './ingest-client.js'

import { ingestAdaptive } from './ingest-adaptive.js'

export { asciiJson } from './ingest-client.js'

/**
 * `reelcdn ingest FILE --id …`: uploads a file to a router as a title.
 * The file is hashed first (one read) so the upload carries its SHA-256: the
 * router then derives the version from it, which is what lets a re-run after
 * an interruption resume (chunks already stored are not sent to shards again)
 * and what lets a published title be recognised without uploading it again.
 * The token comes from REELCDN_ROUTER_TOKEN or --token-file, never a flag.
 * The file and the token are checked before the file is hashed, and every
 * failure names what was wrong (ingest-client.ts).
 */
interface Opts {
  id: string
  title?: string
  category: string[]
  regions?: string
  contentType?: string
  availableFrom?: string
  availableUntil?: string
  router?: string
  tokenFile?: string
  config?: string
  renditions?: string
  renditionsDir?: string
  hls?: string
  workDir?: string
  keepWorkDir?: boolean
}

export function ingestCommand(): Command {
  const cmd = new Command('ingest')
    .summary('upload a file to a router as a title, or transcode it into an adaptive title')
    .description('Upload FILE as title --id through a router (PUT /v1/content/{id}). With --renditions LADDER, transcode FILE ' +
      'into that ladder (ingest.ladders) with ffmpeg here, upload each rendition and publish an adaptive title (HLS and DASH); ' +
      '--renditions-dir and --hls publish pre-encoded renditions. Shows progress bars on a terminal ' +
      'and plain lines otherwise; prints the router\'s JSON answer on stdout. The admin token comes from ' +
      'REELCDN_ROUTER_TOKEN or --token-file (default: router.tokenFile of --config).')
    .argument('[file]', 'the video file (none with --renditions-dir or --hls)')
    .requiredOption('--id <contentId>', 'the title\'s contentId (1-111 characters of [A-Za-z0-9._-]; required)')
    .option('--title <text>', 'display title (default: the contentId)')
    .option('--category <name>', 'a category; repeat for several', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--regions <list>', 'comma-separated ISO 3166-1 alpha-2 codes where it may play, or * (default: *)')
    .option('--content-type <type>', 'media type (default: from the file name, else application/octet-stream)')
    .option('--available-from <date>', 'ISO 8601 start of the availability window (default: none, playable at once)')
    .option('--available-until <date>', 'ISO 8601 end of the availability window (default: none, playable forever)')
    .option('-c, --config <file>', 'JSON config file, layered over config/default.json: the router and its token file, ' +
      'e.g. the <data-dir>/cluster.json `reelcdn cluster` writes (default: none)')
    .option('--router <url>', 'router base URL (default: http://<router.host>:<router.port> from the config)')
    .option('--token-file <file>', 'file holding the admin token (default: router.tokenFile of the config; REELCDN_ROUTER_TOKEN, if set, wins over it)')
    .option('--renditions <ladder>', 'adaptive title: transcode FILE into this ladder of ingest.ladders (default, sample, or your own) with ffmpeg, ' +
      'then upload the renditions and publish HLS and DASH (default: none, FILE is uploaded as one file)')
    .option('--renditions-dir <dir>', 'adaptive title from pre-encoded renditions: a directory of single-track fMP4 files named <rid>.mp4, nothing transcoded (default: none)')
    .option('--hls <master>', 'adaptive title from an fMP4/CMAF HLS package: the path or http(s) URL of its master playlist, nothing transcoded, MPEG-TS refused (default: none)')
    .option('--work-dir <dir>', 'where transcodes keep their files until the title is published; a re-run resumes from them (default: ingest.workDir of the config)')
    .option('--keep-work-dir', 'keep the rendition files in the work directory after publishing (default: removed)')
  cmd.action(async (file: string | undefined) => {
    try {
      const o = cmd.opts<Opts>()
      if (o.renditions === undefined && o.renditionsDir === undefined && o.hls === undefined && file === undefined) {
        throw new BadRequestError('give the video FILE (or, for an adaptive title, --renditions-dir DIR or --hls MASTER)', 'CDN_ERR_BAD_ARGS')
      }
      const out = o.renditions !== undefined || o.renditionsDir !== undefined || o.hls !== undefined
        ? await interruptible(signal => ingestAdaptive(file, { ...o, id: o.id, signal }))
        : await ingestFile(file!, o)
      process.stdout.write(JSON.stringify(out, null, 2) + '\n')
    } catch (err) {
      fail(err)
    }
  })
  return cmd
}

/**
 * SIGINT or SIGTERM stops a transcode's ffmpeg processes (which would run on,
 * orphaned, writing the files a re-run needs) and the upload, so the error
 * says what was kept; a second signal kills at once, as without a handler.
 */
async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController()
  const stop = () => {
    process.stderr.write('\ninterrupted: stopping ffmpeg and the upload (again to quit at once)\n')
    ac.abort()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    return await fn(ac.signal)
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

const TYPES: Record<string, string> = { mp4: 'video/mp4', m4v: 'video/mp4', mkv: 'video/x-matroska', webm: 'video/webm', mov: 'video/quicktime', ts: 'video/mp2t' }

export async function ingestFile(file: string, o: Opts, env: NodeJS.ProcessEnv = process.env): Promise<unknown> {
  const id = parseContentId(o.id)
  const size = await checkFile(file)
  const config = loadConfig({ file: o.config, env })
  const base = (o.router ?? configuredUrls(config).router).replace(/\/+$/, '')
  const token = loadSecret(o.tokenFile ?? config.router.tokenFile, 'REELCDN_ROUTER_TOKEN', env)
  const ext = file.split('.').pop()?.toLowerCase() ?? ''
  const contentType = o.contentType ?? TYPES[ext] ?? 'application/octet-stream'
  const meta = titleMeta(id, o, contentType)

  await checkAdmin(base, token)

  const sha256 = await hashFile(file, new Progress({ label: 'hashing  ', total: size, unit: 'bytes' }))

  // a published title: recognise it without sending the bytes
  const pre = await request(`${base}/v1/content/${id}/meta`, { method: 'GET', headers: authHeader(token) }).catch(err => { throw unreachable(base, err) })
  if (pre.statusCode === 200) {
    const m = await pre.body.json() as { sha256: string }
    if (m.sha256 === sha256) return { status: 'exists', contentId: id, sha256 }
    throw new ConflictError(`title ${id} is published with sha256 ${m.sha256}, this file is ${sha256}: DELETE it first to replace it`)
  }
  await pre.body.dump()

  const upload = new Progress({ label: 'uploading', total: size, unit: 'bytes' })
  let sent = 0
  async function* counted() {
    try {
      for await (const b of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
        sent += (b as Buffer).length
        upload.update(sent)
        yield b as Buffer
      }
    } catch (err) {
      throw fileError(file, err)
    }
  }
  const res = await putBody(base, `/v1/content/${id}`, {
    'content-length': String(size), 'content-digest': digestHeader(sha256), 'content-type': contentType,
    'reelcdn-meta': asciiJson(meta), ...authHeader(token),
  }, Readable.from(counted()), { sent: () => sent, size }, token).catch(err => {
    upload.finish('failed')
    throw err
  })
  upload.finish(res.status < 300 ? 'done' : `failed (${res.status})`)
  if (res.status >= 300) throw routerError(res.status, res.text, token)
  try { return JSON.parse(res.text) as unknown } catch { return res.text }
}
