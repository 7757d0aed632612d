import { digestHeader } from '../lib/integrity/digest.js'
import { chunkName } from '../lib/ids.js'
import { renditionOf, type Manifest } from '../lib/manifest.js'
import { segmentOffsets, type Rendition } from '../lib/media/rendition.js'
import type { Representation } from '../lib/representation.js'
import type { FileKind } from '../lib/metrics.js'

/**
 * A title as the edge serves it: its manifest, its files, the cache identity
 * of each chunk of each file, and the representation headers.
 *
 * A title's files (docs/abr.md): a single-file title has one, its own; an
 * adaptive title's own file is empty and each rendition is a file of the
 * title, stored and verified as a title's file is (chunks of `chunkSize`,
 * a SHA-256 and a block-list digest per chunk). Everything below the server
 * (reader, coalescer, fills, tiers, readahead, sessions) reads a `TitleFile`
 * and never asks which kind it has, so a rendition's bytes take exactly the
 * path a title's take.
 *
 * A file's name (`contentId`, or `contentId/rid` for a rendition) prefixes its
 * chunks' cache keys, `<name>/<index>/<sha256>`: a single-file title's keys are
 * those of before issue 15, so a disk tier (and its saved policy state) stays
 * valid across the upgrade, and a purge of `contentId/` takes the renditions
 * with the title.
 *
 * Built once per metadata fetch; a rendition's file and a chunk's ref on first
 * use (a title's chunks that nobody reads cost nothing), so a request
 * allocates none of it.
 */
export interface ChunkRef {
  /** `<file name>/index/sha256`: the digest makes a new version of a file a new key, so stale bytes cannot be served */
  key: string
  contentId: string
  /** the rendition the chunk belongs to; unset for a single-file title's own file */
  rid?: string | undefined
  index: number
  sha256: string
  size: number
  /** the SHA-256 of the chunk's block list (a CRC32C per 64 KiB block), when the manifest has one: fills then verify block by block */
  blocks?: string | undefined
  /** the kind of file, for metrics (set on refs of a title's files; a ref rebuilt from the disk index has none) */
  kind?: FileKind | undefined
}

export interface TitleFile {
  title: Title
  contentId: string
  /** the rendition id; undefined for the title's own file */
  rid: string | undefined
  /** `contentId` or `contentId/rid`: the prefix of its chunk keys, and the file sessions and the policies track */
  name: string
  size: number
  chunkSize: number
  chunks: readonly string[]
  blocks: readonly string[] | undefined
  refs: (ChunkRef | undefined)[]
  rep: Representation
  /** the rendition record (segments, type), for a rendition file */
  rendition: Rendition | undefined
  /** 'title' (a single-file title's own file), or the rendition's type: a metric label and a session's stream */
  kind: FileKind
  /** byte offset of each segment's start (and of the last one's end), for a rendition file; built on first use */
  offsets?: number[]
}

export interface Title {
  manifest: Manifest
  /** the title's own file: a single-file title's bytes, empty for an adaptive title */
  file: TitleFile
  /** rendition files by id, each built on first use */
  renditions: Map<string, TitleFile>
  /** generated playlists by file name (edge/serve/playlists.ts), each built on first use */
  playlists: Map<string, unknown>
}

export const IMMUTABLE = 'public, max-age=31536000, immutable'

/** The cache key of chunk `index` of file `name` (a contentId, or `contentId/rid`). */
export function chunkKey(name: string, index: number, sha256: string): string {
  return `${name}/${index}/${sha256}`
}

/** A file's name: its chunk keys' prefix. */
export function fileName(contentId: string, rid: string | undefined): string {
  return rid === undefined ? contentId : `${contentId}/${rid}`
}

/** A chunk's name in logs and errors: `movie-1/3`, `movie-1/v720/3`. */
export function refName(ref: Pick<ChunkRef, 'contentId' | 'rid' | 'index'>): string {
  return chunkName(fileName(ref.contentId, ref.rid), ref.index)
}

/** Chunk `index` of a file (which must exist), built once. */
export function chunkRef(file: TitleFile, index: number): ChunkRef {
  let ref = file.refs[index]
  if (ref === undefined) {
    const sha256 = file.chunks[index]!
    ref = { key: chunkKey(file.name, index, sha256), contentId: file.contentId, rid: file.rid, index, sha256,
      size: Math.min(file.chunkSize, file.size - index * file.chunkSize), blocks: file.blocks?.[index], kind: file.kind }
    file.refs[index] = ref
  }
  return ref
}

/** The rendition `rid` of a title as a file, or undefined if the title has none of that id. */
export function renditionFile(title: Title, rid: string): TitleFile | undefined {
  let f = title.renditions.get(rid)
  if (f === undefined) {
    const r = renditionOf(title.manifest, rid)
    if (r === undefined) return undefined
    const m = title.manifest
    f = {
      title, contentId: m.contentId, rid, name: fileName(m.contentId, rid), size: r.size, chunkSize: m.chunkSize, chunks: r.chunks,
      blocks: r.blocks, refs: new Array<ChunkRef | undefined>(r.chunks.length), rendition: r, kind: r.type,
      rep: { size: r.size, etag: `"${r.sha256}"`, lastModified: m.createdAt, contentType: r.contentType, cacheControl: IMMUTABLE,
        extra: { 'repr-digest': digestHeader(r.sha256) }, reused: true },
    }
    title.renditions.set(rid, f)
  }
  return f
}

/** The file a chunk ref names, or undefined (a rendition the title no longer has). */
export function fileOf(title: Title, rid: string | undefined): TitleFile | undefined {
  return rid === undefined ? title.file : renditionFile(title, rid)
}

/**
 * Whether bytes [start, end] of a file are only its initialization segment
 * (a rendition's `ftyp`+`moov`). A player reads it on every rung switch before
 * the segment it wants, so it says nothing of where the viewer is: such a read
 * moves no session and starts no readahead.
 */
export function initOnly(file: TitleFile, end: number): boolean {
  return file.rendition !== undefined && end < file.rendition.init
}

/** The segment of a rendition file that byte `at` falls in (-1 in the init segment, the count past the last). */
export function segmentAt(file: TitleFile, at: number): number {
  const r = file.rendition
  if (r === undefined) return -1
  const o = (file.offsets ??= segmentOffsets(r))
  let lo = 0
  let hi = o.length - 1
  if (at < o[0]!) return -1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (o[mid]! <= at) lo = mid
    else hi = mid - 1
  }
  return lo
}

export function buildTitle(manifest: Manifest): Title {
  const title = { manifest, renditions: new Map(), playlists: new Map() } as unknown as Title
  title.file = {
    title, contentId: manifest.contentId, rid: undefined, name: manifest.contentId, size: manifest.size, chunkSize: manifest.chunkSize,
    chunks: manifest.chunks, blocks: manifest.blocks, refs: new Array<ChunkRef | undefined>(manifest.chunks.length),
    rendition: undefined, kind: 'title',
    rep: {
      size: manifest.size,
      etag: `"${manifest.sha256}"`,
      lastModified: manifest.createdAt,
      contentType: manifest.contentType,
      cacheControl: IMMUTABLE,
      extra: { 'repr-digest': digestHeader(manifest.sha256) },
      reused: true,
    },
  }
  return title
}
