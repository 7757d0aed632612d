import { isAdaptive, type Manifest } from '../../lib/manifest.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { storageId } from './keys.js'

/**
 * The files of a title, as storage sees them (docs/abr.md, "A title's
 * files"). A single-file title has one file, its own bytes. An adaptive
 * title's own file is empty, and each rendition is a file of its own. Every
 * file is stored the same way: `chunkSize` chunks under the storage id
 * `<contentId>.<version>`, a SHA-256 and a block-list digest per chunk. So
 * the reader, the repairer and delete work on files, not on manifests, and
 * never ask which kind of title they hold.
 *
 * Files are built once per manifest object (manifests are cached and never
 * change), so a read allocates none.
 */
export interface StoredFile {
  contentId: string
  /** '' for the title's own file, else the rendition's id */
  rid: string
  /** the storage id its chunks are kept under */
  sid: string
  version: string
  size: number
  chunkSize: number
  sha256: string
  chunks: readonly string[]
  /** per chunk, the SHA-256 of its block list; undefined for titles ingested before manifests carried them */
  blocks: readonly string[] | undefined
  /** what logs and errors call it: `movie`, or `movie/v720` for a rendition */
  name: string
}

const titles = new WeakMap<Manifest, StoredFile>()
const renditions = new WeakMap<Rendition, StoredFile>()

/** The title's own file (empty for an adaptive title). */
export function titleFile(m: Manifest): StoredFile {
  let f = titles.get(m)
  if (f === undefined) {
    f = { contentId: m.contentId, rid: '', sid: storageId(m.contentId, m.version), version: m.version, size: m.size,
      chunkSize: m.chunkSize, sha256: m.sha256, chunks: m.chunks, blocks: m.blocks, name: m.contentId }
    titles.set(m, f)
  }
  return f
}

/** A rendition's file: its chunks are the title's chunk size, under the rendition's own version. */
export function renditionFile(m: Manifest, r: Rendition): StoredFile {
  let f = renditions.get(r)
  if (f === undefined) {
    f = { contentId: m.contentId, rid: r.id, sid: storageId(m.contentId, r.version), version: r.version, size: r.size,
      chunkSize: m.chunkSize, sha256: r.sha256, chunks: r.chunks, blocks: r.blocks, name: `${m.contentId}/${r.id}` }
    renditions.set(r, f)
  }
  return f
}

/** Every file of a title that holds chunks: its own (single-file) or its renditions' (adaptive). */
export function filesOf(m: Manifest): StoredFile[] {
  return isAdaptive(m) ? m.renditions.map(r => renditionFile(m, r)) : [titleFile(m)]
}
