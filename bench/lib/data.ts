import { createHash, randomFillSync } from 'node:crypto'
import { mkdir, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { ChunkStore } from '../../origin/chunk-store.js'

/**
 * Bench data: `count` chunks of random bytes (incompressible, like video),
 * PUT into an origin shard the way the router will, then published to nginx
 * as symlinks to the very files the shard stores, so both servers read the
 * same inodes and the same page-cache pages.
 */
export interface ChunkSet {
  contentId: string
  count: number
  size: number
  sha256: string[]
  /** the first chunk's bytes, kept to check what servers send */
  sample: Buffer
}

export async function putChunks(originUrl: string, contentId: string, count: number, size: number,
  log: (s: string) => void): Promise<ChunkSet> {
  const buf = Buffer.allocUnsafe(size)
  const sha256: string[] = []
  let sample: Buffer | undefined
  for (let i = 0; i < count; i++) {
    randomFillSync(buf)
    const digest = createHash('sha256').update(buf).digest()
    sha256.push(digest.toString('hex'))
    if (i === 0) sample = Buffer.from(buf)
    const res = await request(`${originUrl}/v1/chunks/${contentId}/${i}`, {
      method: 'PUT', body: buf,
      headers: { 'content-digest': `sha-256=:${digest.toString('base64')}:`, 'content-type': 'application/octet-stream' },
    })
    const text = await res.body.text()
    if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`PUT chunk ${i}: ${res.statusCode} ${text}`)
    log(`  stored chunk ${i + 1}/${count}`)
  }
  return { contentId, count, size, sha256, sample: sample! }
}

/** Makes `<wwwDir>/<index>` a symlink to the shard's file for each chunk; returns the directory. */
export async function linkForNginx(set: ChunkSet, originDataDir: string, wwwDir: string): Promise<string> {
  await mkdir(wwwDir, { recursive: true })
  const store = new ChunkStore(originDataDir)
  for (let i = 0; i < set.count; i++) await symlink(store.path(set.contentId, i, set.sha256[i]!), join(wwwDir, String(i)))
  return wwwDir
}

/**
 * Checks that a server answers a range of chunk 0 with a 206 and exactly the
 * stored bytes, and a whole chunk with its SHA-256: the bench must compare
 * servers doing the same work.
 */
export async function checkServer(name: string, base: string, prefix: string, set: ChunkSet, rangeBytes: number,
  headers: Record<string, string> = {}): Promise<void> {
  const start = Math.floor(set.size / 3) + 12345
  const end = start + rangeBytes - 1
  const r = await request(`${base}${prefix}0`, { headers: { ...headers, range: `bytes=${start}-${end}` } })
  const got = Buffer.from(await r.body.arrayBuffer())
  if (r.statusCode !== 206 || !got.equals(set.sample.subarray(start, end + 1)))
    throw new Error(`${name} answered a range of chunk 0 with ${r.statusCode} and ${got.length} bytes that ${got.equals(set.sample.subarray(start, end + 1)) ? 'match' : 'do not match'} the source`)
  for (let i = 0; i < set.count; i++) {
    const w = await request(`${base}${prefix}${i}`, { headers })
    const h = createHash('sha256')
    for await (const piece of w.body) h.update(piece as Buffer)
    const hex = h.digest('hex')
    if (w.statusCode !== 200 || hex !== set.sha256[i]) throw new Error(`${name} answered chunk ${i} with ${w.statusCode} and sha256 ${hex}, want ${set.sha256[i]}`)
  }
}
