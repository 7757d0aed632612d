import { stat } from 'node:fs/promises'
import { request } from 'undici'
import { loadConfig, configuredUrls } from '../../lib/config/config.js'
import { loadSecret } from '../../lib/security/auth.js'
import { BadRequestError, ConflictError } from '../../lib/errors.js'
import { parseContentId } from '../../lib/ids.js'
import { HLS_TYPE } from '../../lib/media/hls.js'
import { checkLadder, renditionSchema, type Rendition } from '../../lib/media/rendition.js'
import { Progress } from '../../lib/progress.js'
import { authHeader, checkAdmin, checkFile, fileError, hashFile, publishAdaptive, putRendition, routerError, titleMeta, unreachable, type MetaOptions } from './ingest-client.js'
import { importHls } from './transcode/hls-import.js'
import { probeSource } from './transcode/probe.js'
import { readRenditionsDir } from './transcode/renditions-dir.js'
import type { LocalRendition } from './transcode/renditions.js'
import { findTools } from './transcode/tools.js'
import { prepareTranscode, transcode } from './transcode/transcode.js'
import type { WorkDir } from './transcode/work-dir.js'

/**
 * `reelcdn ingest` for an adaptive title (docs/abr.md, "Ingest"): renditions
 * made here — transcoded from a source (`FILE --renditions LADDER`), or taken
 * pre-encoded (`--renditions-dir`, `--hls`) — then uploaded and published.
 *
 * Order, cheapest first, and nothing visible until the end: the input and
 * the ladder name are checked, the admin token shown to the router, the
 * title looked up (a single-file title under the id is a conflict before any
 * work); then the source is probed and hashed, the renditions made (or found
 * in the work directory) and checked as a ladder; only then is each file
 * uploaded (`PUT …/renditions/{rid}`, which stores chunks but publishes
 * nothing) and the records put (`PUT /v1/content/{id}`), which publishes.
 * A failure before that last request leaves no title; the chunks of the
 * renditions already uploaded are orphans the repairer collects, or what a
 * re-run finds stored.
 *
 * Re-runs. Transcoded renditions stay in their work directory until the
 * title is published, so a failed upload or publish is resumed without
 * transcoding; after the publish only the renditions' digests stay
 * (`published.json`), so the same command again answers `exists` at once.
 * A title already published under the id with another ladder is a 409,
 * raised before transcoding unless the work directory holds a whole ladder
 * to compare.
 *
 * Progress: bars on a terminal; off one (make run, CI, a log) only each
 * step's last line, so a log says what was done without a line every 2 s.
 */
export interface AdaptiveOptions extends MetaOptions {
  id: string
  /** a ladder of ingest.ladders, with a source FILE */
  renditions?: string
  renditionsDir?: string
  hls?: string
  workDir?: string
  keepWorkDir?: boolean
  router?: string
  tokenFile?: string
  config?: string
  /** config settings by dotted path, over --config and the environment (tests) */
  overrides?: Record<string, unknown>
  /** progress and notes (default stderr) */
  out?: NodeJS.WriteStream
  /** Ctrl-C: stops ffmpeg (its rung stays unfinished) and any upload; what finished stays for the next run */
  signal?: AbortSignal
}

export interface AdaptiveResult {
  status: 'created' | 'exists'
  contentId: string
  renditions: string[]
  [k: string]: unknown
}

export async function ingestAdaptive(file: string | undefined, o: AdaptiveOptions, env: NodeJS.ProcessEnv = process.env): Promise<AdaptiveResult> {
  const id = parseContentId(o.id)
  const out = o.out ?? process.stderr
  const note = (line: string) => out.write(`${line}\n`)
  const inputs = [file !== undefined && 'FILE --renditions', o.renditionsDir !== undefined && '--renditions-dir', o.hls !== undefined && '--hls'].filter(Boolean)
  if (inputs.length !== 1) throw new BadRequestError(`give one of FILE --renditions LADDER, --renditions-dir DIR or --hls MASTER (got ${inputs.join(', ') || 'none'})`, 'CDN_ERR_BAD_ARGS')
  if (file !== undefined && o.renditions === undefined) throw new BadRequestError('--renditions LADDER is needed to transcode FILE', 'CDN_ERR_BAD_ARGS')
  if (file === undefined && o.renditions !== undefined) throw new BadRequestError('--renditions transcodes a source FILE; pre-encoded renditions (--renditions-dir, --hls) take no ladder', 'CDN_ERR_BAD_ARGS')
  if (file !== undefined) await checkFile(file)
  if (o.renditionsDir !== undefined) await checkDir(o.renditionsDir)
  const config = loadConfig({ file: o.config, env, overrides: (o.overrides ?? {}) as never })
  const settings = { ...config.ingest, ...(o.workDir !== undefined ? { workDir: o.workDir } : {}) }
  if (o.renditions !== undefined && !settings.ladders[o.renditions]) {
    throw new BadRequestError(`no ladder named ${o.renditions} in ingest.ladders (there are: ${Object.keys(settings.ladders).join(', ')})`, 'CDN_ERR_BAD_LADDER')
  }
  const base = (o.router ?? configuredUrls(config).router).replace(/\/+$/, '')
  const token = loadSecret(o.tokenFile ?? config.router.tokenFile, 'REELCDN_ROUTER_TOKEN', env)
  await checkAdmin(base, token)
  const published = await publishedRenditions(base, id, token)

  let local: LocalRendition[]
  let wd: WorkDir | undefined
  let afterPublish = async (_: LocalRendition[]) => {}
  if (file !== undefined) {
    const tools = await findTools(settings.ffmpeg, note)
    const source = await probeSource(tools.ffprobe, file)
    const sha256 = await hashFile(file, progress('hashing  ', (await stat(file)).size, out))
    const opts = { source, sha256, ladder: o.renditions!, settings, tools, out, ...(o.signal ? { signal: o.signal } : {}) }
    const prepared = await prepareTranscode(opts)
    wd = prepared.workDir
    const done = await wd.published()
    if (done && published && done.contentId === id && sameLadder(done.renditions, published)) {
      await wd.unlock()
      return { status: 'exists', contentId: id, renditions: published.map(r => r.id) }
    }
    if (done) await wd.forgetPublished()
    if (published && !(await everyFinished(wd, prepared.ids))) {
      await wd.unlock()
      throw new ConflictError(`title ${id} is already published with renditions ${published.map(r => r.id).join(', ')}: DELETE it first to replace it`)
    }
    note(`ladder ${o.renditions} for ${source.video.displayWidth}x${source.video.displayHeight}: ` +
      prepared.plan.rungs.map(r => `${r.id} ${r.width}x${r.height} ${r.kbps} kb/s`).join(', ') + (prepared.plan.audio ? `, ${prepared.plan.audio.id}` : ', no audio'))
    const made = await transcode(opts, prepared)
    if (made.resumed.length) note(`found done in ${wd.dir}, not transcoded again: ${made.resumed.join(', ')}`)
    local = made.renditions
    const dir = wd
    afterPublish = rs => dir.markPublished({ contentId: id, renditions: rs.map(r => ({ id: r.id, sha256: r.sha256 })) }, o.keepWorkDir === true)
  } else if (o.renditionsDir !== undefined) {
    const d = await readRenditionsDir(o.renditionsDir)
    if (d.ignored.length) note(`${o.renditionsDir}: not renditions, ignored: ${d.ignored.join(', ')}`)
    local = d.renditions
  } else {
    const h = await importHls(o.hls!, settings.workDir, note)
    if (h.ignored.length) note(`${o.hls}: left out (one audio rendition per title): ${h.ignored.join(', ')}`)
    local = h.renditions
    wd = h.workDir
    const dir = wd
    afterPublish = async () => { if (o.keepWorkDir !== true) await dir.clear() }
  }

  try {
    if (published) {
      if (sameLadder(local, published)) {
        await afterPublish(local)
        return { status: 'exists', contentId: id, renditions: published.map(r => r.id) }
      }
      throw new ConflictError(`title ${id} is published with other renditions (${published.map(r => r.id).join(', ')}): DELETE it first to replace it`)
    }
    const records: Rendition[] = []
    for (const r of local) {
      o.signal?.throwIfAborted()
      const bar = progress(`upload    ${r.id.padEnd(12)}`, r.size, out)
      const stored = await putRendition(base, id, { id: r.id, path: r.path, size: r.size, sha256: r.sha256, contentType: r.media.contentType }, token, bar, o.signal)
      const record = renditionSchema.safeParse({ ...r.media, ...stored })
      if (!record.success) throw new BadRequestError(`rendition ${r.id} does not make a valid record: ${record.error.issues.map(i => `${i.path.join('.')}: ${i.message}`).join('; ')}`, 'CDN_ERR_BAD_RENDITIONS')
      records.push(record.data)
    }
    const why = checkLadder(records)
    if (why) throw new BadRequestError(why, 'CDN_ERR_BAD_RENDITIONS')
    o.signal?.throwIfAborted()
    const answer = await publishAdaptive(base, id, titleMeta(id, o, HLS_TYPE), records, token)
    await afterPublish(local)
    note(`published ${id}: ${base}/v1/content/${id}/master.m3u8 (DASH: ${base}/v1/content/${id}/manifest.mpd)`)
    return { status: 'created', contentId: id, renditions: records.map(r => r.id), ...(typeof answer === 'object' && answer ? answer : {}) }
  } catch (err) {
    if (wd && file !== undefined) {
      await wd.unlock()
      if (err instanceof Error) err.message += `; the renditions stay in ${wd.dir}: the same command resumes without transcoding`
    } else if (wd && o.keepWorkDir !== true) {
      await wd.clear()
    }
    throw err
  }
}

async function checkDir(dir: string): Promise<void> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new BadRequestError(`--renditions-dir ${dir} is not a directory`, 'CDN_ERR_BAD_RENDITIONS')
  } catch (err) {
    if (err instanceof BadRequestError) throw err
    throw fileError(dir, err)
  }
}

async function everyFinished(wd: WorkDir, ids: string[]): Promise<boolean> {
  for (const id of ids) if (!(await wd.finished(id))) return false
  return true
}

function sameLadder(a: readonly { id: string; sha256: string }[], b: readonly { id: string; sha256: string }[]): boolean {
  const key = (x: readonly { id: string; sha256: string }[]) => x.map(r => `${r.id}:${r.sha256}`).sort().join(',')
  return key(a) === key(b)
}

/** The renditions of the title published under the id, if any; a single-file title there is a conflict. */
async function publishedRenditions(base: string, id: string, token: string | undefined): Promise<Rendition[] | undefined> {
  const res = await request(`${base}/v1/content/${id}/meta`, { method: 'GET', headers: authHeader(token) }).catch(err => { throw unreachable(base, err) })
  const text = await res.body.text()
  if (res.statusCode === 404) return undefined
  if (res.statusCode !== 200) throw routerError(res.statusCode, text, token)
  const m = JSON.parse(text) as { renditions?: Rendition[]; sha256?: string }
  if (!m.renditions?.length) throw new ConflictError(`title ${id} is published as a single file (sha256 ${m.sha256}): DELETE it first to publish an adaptive title under that id`)
  return m.renditions
}

/** A bar on a terminal; elsewhere only its last line (plainEveryMs: never before the end). */
function progress(label: string, total: number, out: NodeJS.WriteStream): Progress {
  return new Progress({ label, total, unit: 'bytes', stream: out, plainEveryMs: Infinity })
}
