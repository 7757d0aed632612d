import { readdir, stat } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { RENDITION_ID, RENDITION_ID_RULE } from '../../../lib/media/rendition.js'
import { RenditionInputError } from './errors.js'
import { indexLadder, type LocalRendition } from './renditions.js'

/**
 * `--renditions-dir DIR`: a ladder encoded elsewhere, one single-track
 * fragmented MP4 (CMAF) file per rendition, used as they are. A file's name
 * without its extension is the rendition id (`v720.mp4` → v720,
 * `a128.cmfa` → a128), so it must follow the rendition id rule; files with
 * other extensions and hidden files are not renditions and are ignored (and
 * listed, so a typo does not pass silently). Every file is indexed and the
 * set checked as a ladder (renditions.ts) before anything is uploaded.
 */
const MEDIA = new Set(['.mp4', '.m4v', '.m4a', '.cmfv', '.cmfa', '.m4s'])

export interface DirRenditions {
  renditions: LocalRendition[]
  ignored: string[]
}

export async function readRenditionsDir(dir: string): Promise<DirRenditions> {
  let names: string[]
  try {
    const st = await stat(dir)
    if (!st.isDirectory()) throw new RenditionInputError(`--renditions-dir ${dir} is not a directory`)
    names = (await readdir(dir)).sort()
  } catch (err) {
    if (err instanceof RenditionInputError) throw err
    const code = (err as NodeJS.ErrnoException).code
    throw new RenditionInputError(code === 'ENOENT' ? `no such directory: ${dir}` : `cannot read ${dir}: ${code ?? (err as Error).message}`, { cause: err })
  }
  const files: { id: string; path: string }[] = []
  const ignored: string[] = []
  const seen = new Map<string, string>()
  for (const name of names) {
    const ext = extname(name).toLowerCase()
    if (name.startsWith('.') || !MEDIA.has(ext)) {
      ignored.push(name)
      continue
    }
    const path = join(dir, name)
    if (!(await stat(path)).isFile()) {
      ignored.push(name)
      continue
    }
    const id = name.slice(0, name.length - ext.length)
    if (!RENDITION_ID.test(id)) throw new RenditionInputError(`${path}: the file name gives the rendition id ${JSON.stringify(id)}, but ${RENDITION_ID_RULE}`)
    // its media playlist would be master.m3u8, the master's name (docs/abr.md)
    if (id === 'master') throw new RenditionInputError(`${path}: a rendition may not be named master (its playlist would be master.m3u8, the master playlist): rename the file`)
    const other = seen.get(id)
    if (other) throw new RenditionInputError(`${dir}: ${other} and ${name} are both rendition ${id}`)
    seen.set(id, name)
    files.push({ id, path })
  }
  if (files.length === 0) {
    throw new RenditionInputError(`${dir} holds no rendition files (${[...MEDIA].join(', ')})${ignored.length ? `; ignored: ${ignored.join(', ')}` : ''}`)
  }
  return { renditions: await indexLadder(files), ignored }
}
