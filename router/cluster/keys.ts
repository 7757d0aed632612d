import { createHash, randomBytes } from 'node:crypto'
import { isContentId, VERSION_HEX } from '../../lib/ids.js'

/**
 * Names the router gives things. A title (contentId) has versions; each
 * version's chunks live on the shards under a storage id that includes the
 * version, `<contentId>.<version>`, so the chunks of a re-ingested title never
 * collide with stale copies of an older one (a shard refuses a different body
 * under an existing name, and a stale copy must never pass for a new one).
 *
 * The version is 16 lowercase hex digits:
 *  - when the uploader sends the whole file's SHA-256 in Content-Digest (the
 *    CLI always does): the first 16 of SHA-256("<file sha256>/<chunkSize>").
 *    Deterministic, so running the same ingest again finds the chunks it
 *    stored before and resumes; the chunk size is in it because chunk i of
 *    one file differs between chunk sizes;
 *  - otherwise random: such an ingest cannot resume, and what an interrupted
 *    one stored is deleted by the repairer once older than orphanGraceMs.
 * Version digits have no dot, so a storage id splits at its last dot. Shard keys
 * allow 128 characters, which leaves 111 for a title's contentId, and a
 * contentId may not end in a dot (the storage id would contain ".."): the
 * contentId rule in lib/ids.ts, which every service and tool applies.
 *
 * Ring keys: `c/<storageId>/<index>` for a chunk, `m/<contentId>` for a
 * manifest (it must be found before the version is known). Changing any of
 * these strings moves data: router/cluster/ring.test.ts pins them.
 */
const VERSION = /^[0-9a-f]{16}$/

export function versionFromDigest(fileSha256: string, chunkSize: number): string {
  return sha256Hex(`${fileSha256}/${chunkSize}`).slice(0, VERSION_HEX)
}

/**
 * An adaptive title's version (docs/abr.md): the first 16 hex digits of the
 * SHA-256 of its rendition records, in id order, as the router parsed them.
 * The records hold each file's digest and everything the playlists say, so
 * the same ladder published again is the same version, and any change a
 * player could see is a new one (the playlists' ETag is this version).
 */
export function ladderVersion(renditions: readonly { id: string }[]): string {
  const sorted = [...renditions].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return sha256Hex(JSON.stringify(sorted)).slice(0, VERSION_HEX)
}

export function randomVersion(): string {
  return randomBytes(VERSION_HEX / 2).toString('hex')
}

export function storageId(contentId: string, version: string): string {
  return `${contentId}.${version}`
}

/** The title and version a shard's chunk belongs to; undefined for a name the router never writes. */
export function parseStorageId(s: string): { contentId: string; version: string } | undefined {
  const dot = s.lastIndexOf('.')
  if (dot <= 0) return undefined
  const contentId = s.slice(0, dot)
  const version = s.slice(dot + 1)
  if (!VERSION.test(version) || !isContentId(contentId)) return undefined
  return { contentId, version }
}

export function chunkKey(sid: string, index: number): string {
  return `c/${sid}/${index}`
}

export function manifestKey(contentId: string): string {
  return `m/${contentId}`
}

/** A strong ETag for bytes named by their SHA-256. */
export function etagOf(sha256Hex: string): string {
  return `"${sha256Hex}"`
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}
