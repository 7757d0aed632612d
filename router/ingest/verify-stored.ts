import { BLOCK_SIZE, blockListDigest } from '../../lib/integrity/block-hasher.js'
import { BadRequestError, CdnError, toCdnError } from '../../lib/errors.js'
import { chunkLength } from '../../lib/manifest.js'
import { chunkKey } from '../cluster/keys.js'
import type { Cluster } from '../cluster/cluster.js'
import type { StoredFile } from '../cluster/files.js'
import type { ShardClient } from '../cluster/shard-client.js'
import { NoReplicaError, ShardRefusedError } from '../errors.js'

/**
 * Before an adaptive title is published, every chunk of every rendition must
 * be stored as its record says (docs/abr.md, "Ingest"): on at least `need`
 * of its owners with its digest (a HEAD: the ETag is the digest, the length
 * the chunk's), and with a block list whose SHA-256 is the record's (fetched
 * from one such owner, the next if it does not match). A ladder is up to 16
 * renditions of thousands of chunks, so the chunks are checked by
 * `concurrency` workers taking them in order, each asking all the chunk's
 * owners at once: at most concurrency × copies HEADs in flight, whatever the
 * ladder's size. The first problem stops the workers from taking more.
 *
 * What the publisher is told, by the first problem in ladder order:
 *   - a chunk held by fewer than `need` owners, when the owners that did not
 *     answer could not make up the difference either: 409
 *     CDN_ERR_RENDITION_MISSING (never uploaded, or lost since);
 *   - a stored chunk whose length or block list is not the record's: 400
 *     CDN_ERR_BAD_RENDITION (the record is not what its upload answered);
 *   - owners that did not answer where they might hold it: 503, retryable.
 * Each names the rendition, the chunk and each owner's state.
 */
export interface VerifyOptions {
  /** owners that must hold each chunk */
  need: number
  /** chunks checked at once */
  concurrency: number
  /** counts each chunk checked: ok, missing (a client problem), error (a shard did not answer) */
  count?: (result: 'ok' | 'missing' | 'error') => void
}

interface Problem {
  file: number
  index: number
  kind: 'missing' | 'bad' | 'error'
  message: string
  cause?: Error
}

export async function verifyStored(cluster: Cluster, files: readonly StoredFile[], o: VerifyOptions): Promise<void> {
  const work = (function* () {
    for (let fi = 0; fi < files.length; fi++) for (let i = 0; i < files[fi]!.chunks.length; i++) yield [fi, i] as const
  })()
  const problems: Problem[] = []
  const worker = async () => {
    for (let n = work.next(); !n.done; n = work.next()) {
      const [fi, i] = n.value
      const p = await checkChunk(cluster, files[fi]!, fi, i, o.need)
      o.count?.(p === undefined ? 'ok' : p.kind === 'error' ? 'error' : 'missing')
      if (p) {
        problems.push(p)
        return
      }
      if (problems.length > 0) return
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker))
  if (problems.length === 0) return
  // the first in ladder order, whatever worker found it first; a client's problem before a shard's
  problems.sort((a, b) => Number(a.kind === 'error') - Number(b.kind === 'error') || a.file - b.file || a.index - b.index)
  const p = problems[0]!
  if (p.kind === 'missing') throw new RenditionMissingError(p.message)
  if (p.kind === 'bad') throw new BadRequestError(p.message, 'CDN_ERR_BAD_RENDITION')
  throw new NoReplicaError(`a check of ${p.message}`, { cause: p.cause })
}

export class RenditionMissingError extends CdnError {
  override name = 'RenditionMissingError'
  constructor(message: string) {
    super(message, { code: 'CDN_ERR_RENDITION_MISSING', statusCode: 409, source: 'client' })
  }
}

async function checkChunk(cluster: Cluster, f: StoredFile, fi: number, index: number, need: number): Promise<Problem | undefined> {
  const sid = f.sid
  const want = f.chunks[index]!
  const len = chunkLength(f, index)
  const what = `rendition ${f.rid} chunk ${index} (${sid}/${index})`
  const owners = cluster.owners(chunkKey(sid, index))
  const heads = await Promise.allSettled(owners.map(s => s.chunkHead(sid, index)))
  const good: ShardClient[] = []
  const states: string[] = []
  let unanswered = 0
  let cause: Error | undefined
  for (let i = 0; i < owners.length; i++) {
    const h = heads[i]!
    const id = owners[i]!.id
    if (h.status === 'rejected') {
      if (h.reason instanceof ShardRefusedError && h.reason.upstreamCode === 'CDN_ERR_CORRUPT') { states.push(`${id}: corrupt`); continue }
      unanswered++
      cause ??= toCdnError(h.reason)
      states.push(`${id}: no answer (${toCdnError(h.reason).code})`)
    } else if (h.value === null) states.push(`${id}: missing`)
    else if (h.value.sha256 !== want) states.push(`${id}: other bytes`)
    else if (h.value.size !== len) {
      return { file: fi, index, kind: 'bad', message: `${what} is ${h.value.size} bytes on ${id}, but the record's size ${f.size} makes it ${len}` }
    } else {
      good.push(owners[i]!)
      states.push(`${id}: ok`)
    }
  }
  const held = `held with its digest by ${good.length} of ${owners.length} owners, ${need} needed (${states.join(', ')})`
  if (good.length < need) {
    if (good.length + unanswered >= need) return { file: fi, index, kind: 'error', message: `${what}: ${held}`, ...(cause ? { cause } : {}) }
    return { file: fi, index, kind: 'missing', message: `${what} is not stored: ${held}; upload rendition ${f.rid} again (PUT /v1/content/${f.contentId}/renditions/${f.rid})` }
  }
  const wantList = f.blocks?.[index]
  if (wantList === undefined) return undefined
  let mismatched = 0
  for (const s of good) {
    try {
      if (blockListDigest(await s.chunkCrcs(sid, index, 4 * Math.ceil(len / BLOCK_SIZE))) === wantList) return undefined
      mismatched++
    } catch (err) {
      cause ??= toCdnError(err)
    }
  }
  if (mismatched === good.length)
    return { file: fi, index, kind: 'bad', message: `${what}: the record's block-list digest ${wantList} is not the stored chunk's (on ${good.map(s => s.id).join(', ')}): take blocks from the upload's answer` }
  return { file: fi, index, kind: 'error', message: `${what}: its block list could not be read from ${good.map(s => s.id).join(', ')}`, ...(cause ? { cause } : {}) }
}
