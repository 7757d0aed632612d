import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, readFile, rename } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { request } from 'undici'
import { RenditionInputError } from './errors.js'
import { isMaster, parseMaster, parseMedia, singleFile, type Part } from './hls-playlist.js'
import { indexRendition, ladderProblem, type LocalRendition } from './renditions.js'
import { WorkDir } from './work-dir.js'

/**
 * `--hls PATH_OR_URL`: an HLS package made elsewhere (fMP4/CMAF segments),
 * taken in without transcoding. Each variant and the audio rendition become
 * one file in a work directory: a rendition that already is one file
 * addressed by byte ranges is copied whole, one in separate files is joined
 * (its EXT-X-MAP, then every segment in order — fragments carry their own
 * decode times, so the join is the file a single-file packager would have
 * written). Then each file is indexed and the set checked as a ladder.
 *
 * Audio: the group the first variant names, its DEFAULT=YES rendition (or
 * its first); a rendition record holds no language, so other audio
 * renditions are left out and listed. An EXT-X-MEDIA without a URI means
 * the audio is muxed into the variants, which the index refuses (one track
 * per rendition). Ids come from what the files hold: `v<height>` for video
 * (`v<height>-<n>` if two share a height), `a<kb/s>` for audio.
 */
export interface HlsImport {
  renditions: LocalRendition[]
  workDir: WorkDir
  ignored: string[]
}

export async function importHls(where: string, workRoot: string, log: (line: string) => void = () => {}): Promise<HlsImport> {
  const base = /^https?:\/\//i.test(where) ? new URL(where) : pathToFileURL(resolve(where))
  const text = (await fetchBytes(base, where)).toString('utf8')
  const sources: { url: URL; what: string }[] = []
  const ignored: string[] = []
  if (isMaster(text)) {
    const m = parseMaster(text, where)
    const uris = [...new Set(m.variants.map(v => v.uri))]
    for (const u of uris) sources.push({ url: new URL(u, base), what: `variant ${u}` })
    const group = m.variants[0]!.audio
    const inGroup = m.audio.filter(a => a.group === group)
    const chosen = inGroup.find(a => a.isDefault) ?? inGroup[0]
    for (const a of m.audio) if (a !== chosen) ignored.push(`audio ${a.name ?? a.uri ?? a.group}`)
    if (chosen?.uri) sources.push({ url: new URL(chosen.uri, base), what: `audio ${chosen.name ?? chosen.uri}` })
  } else {
    sources.push({ url: base, what: 'media playlist' })
  }
  const wd = await WorkDir.open(workRoot, { hls: base.href }, { hls: base.href })
  try {
    const raw: LocalRendition[] = []
    for (const [i, s] of sources.entries()) {
      const playlist = parseMedia((await fetchBytes(s.url, s.url.href)).toString('utf8'), s.url.href)
      const out = join(wd.dir, `in-${i}.mp4`)
      const whole = singleFile(playlist)
      log(`hls: ${s.what}: ${whole ? 'one file, copied whole' : `init and ${playlist.segments.length} segments, joined`}`)
      await write(out, whole ? [{ uri: whole }] : [playlist.init, ...playlist.segments], s.url)
      raw.push(await indexRendition(`in-${i}`, out, (m, cause) => new RenditionInputError(`${s.url.href} (${s.what}): ${m.replace(/^rendition in-\d+: /, '')}`, { cause })))
    }
    const named = nameRenditions(raw)
    for (const r of named) {
      await rename(r.path, wd.path(r.id))
      r.path = wd.path(r.id)
    }
    const why = ladderProblem(named)
    if (why) throw new RenditionInputError(`${where}: ${why}`)
    return { renditions: named, workDir: wd, ignored }
  } catch (err) {
    await wd.clear()
    throw err
  }
}

function nameRenditions(rs: LocalRendition[]): LocalRendition[] {
  const taken = new Set<string>()
  return rs.map(r => {
    const stem = r.media.type === 'video' ? `v${r.media.height}` : `a${audioKbps(r.media.averageBandwidth)}`
    let id = stem
    for (let n = 2; taken.has(id); n++) id = `${stem}-${n}`
    taken.add(id)
    return { ...r, id, media: { ...r.media, id } }
  })
}

/**
 * An audio rendition's nominal rate: what the file averages includes its
 * moof/mdat headers (a 64 kb/s AAC track measures about 67), so the nearest
 * common encoder setting within 15 % names it; else the measured rate.
 */
const AAC_KBPS = [32, 48, 64, 96, 128, 160, 192, 256, 320]
export function audioKbps(averageBandwidth: number): number {
  const kbps = averageBandwidth / 1000
  const near = AAC_KBPS.reduce((a, b) => (Math.abs(b - kbps) < Math.abs(a - kbps) ? b : a))
  return Math.abs(near - kbps) <= near * 0.15 ? near : Math.round(kbps)
}

async function write(out: string, parts: Part[], base: URL): Promise<void> {
  await mkdir(join(out, '..'), { recursive: true })
  const file = createWriteStream(out)
  try {
    for (const p of parts) {
      const url = new URL(p.uri, base)
      await pipeline(await openPart(url, p), file, { end: false })
    }
  } finally {
    await new Promise<void>((res, rej) => file.end((err?: Error | null) => (err ? rej(err) : res())))
  }
}

async function openPart(url: URL, p: Part): Promise<Readable> {
  const ranged = p.offset !== undefined && p.length !== undefined
  if (url.protocol === 'file:') {
    const path = fileURLToPath(url)
    const s = createReadStream(path, ranged ? { start: p.offset!, end: p.offset! + p.length! - 1 } : {})
    await new Promise<void>((res, rej) => s.once('open', () => res()).once('error', err => rej(fsError(path, err))))
    return s
  }
  const res = await request(url, { headers: ranged ? { range: `bytes=${p.offset}-${p.offset! + p.length! - 1}` } : {} })
    .catch(err => { throw new RenditionInputError(`cannot fetch ${url.href}: ${(err as Error).message}`, { cause: err }) })
  if (res.statusCode !== (ranged ? 206 : 200)) {
    await res.body.dump()
    throw new RenditionInputError(`${url.href} answered ${res.statusCode}${ranged ? ` to a range request (bytes ${p.offset}-${p.offset! + p.length! - 1})` : ''}`)
  }
  return res.body
}

async function fetchBytes(url: URL, where: string): Promise<Buffer> {
  if (url.protocol === 'file:') {
    const path = fileURLToPath(url)
    try {
      return await readFile(path)
    } catch (err) {
      throw fsError(path, err)
    }
  }
  const res = await request(url).catch(err => { throw new RenditionInputError(`cannot fetch ${where}: ${(err as Error).message}`, { cause: err }) })
  if (res.statusCode !== 200) {
    await res.body.dump()
    throw new RenditionInputError(`${where} answered ${res.statusCode}`)
  }
  return Buffer.from(await res.body.arrayBuffer())
}

function fsError(path: string, err: unknown): RenditionInputError {
  const code = (err as NodeJS.ErrnoException).code
  return new RenditionInputError(code === 'ENOENT' ? `no such file: ${path}` : code === 'EISDIR' ? `${path} is a directory, not a playlist` : `cannot read ${path}: ${code ?? (err as Error).message}`, { cause: err })
}
