import type { IncomingMessage, ServerResponse } from 'node:http'
import { tokensEqual } from '../../lib/security/auth.js'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import { ClientClosedError, CdnError, NotFoundError, RangeNotSatisfiableError, UnauthorizedError } from '../../lib/errors.js'
import type { Match, Route } from '../../lib/http/http.js'
import { untilClientGone } from '../../lib/http/client-gone.js'
import { parseChunkIndex, parseContentId } from '../../lib/ids.js'
import type { EdgePeerMetrics } from '../../lib/metrics.js'
import type { Logger } from '../../lib/logger.js'
import { IntervalLog } from '../../lib/interval-log.js'
import type { Coalescer } from '../fill/coalesce.js'
import type { MetaCache } from '../fill/meta-cache.js'
import type { Source, TitleReader } from '../serve/reader.js'
import type { ChunkCache } from '../tiers/cache.js'
import { chunkRef, fileOf, refName, type ChunkRef, type TitleFile } from '../title.js'
import { PEER_FROM, PEER_HOP, PEER_ID } from './peer-path.js'
import type { SiteView } from './site-view.js'

/**
 * Peer fill, the owner's side (docs/peer-fill.md): answers a sibling's
 * request for a chunk (or its block list) of a title this edge owns at the
 * site, from its tiers or through its own coalesced fill, never from a
 * peer: while a peer request for a chunk is answered, that chunk's key is in
 * `serving`, and the edge's peer source (peer-source.ts) fills such a chunk
 * by its own path only. One hop, whatever the views of the site say.
 *
 * The checks, in order, each refusal a CdnError (logged at info without a
 * stack by lib/http/http.ts, a client's doing) and counted by reason in
 * reelcdn_edge_peer_refused_total:
 *   1. the edge credential: none configured here (peer fill closed), or none
 *      given: 401 `credential`; a wrong one: 403 `forbidden`;
 *   2. the hop marker: absent or not a positive integer: 400 `hop`; above 1 (a
 *      request some edge forwarded: a loop attempt): 508 Loop Detected `loop`;
 *   3. the site: this edge has none (no site, or the router's last reply
 *      named none): 421 `no_site`; the asking edge is not one of its members
 *      (or is this edge): 403 `not_member`;
 *   4. the title: not one this edge owns at the site: 421 Misdirected
 *      Request `not_owner` (the asker's view of the site differs from ours:
 *      it fills by its own path, and the next heartbeat reconciles them);
 * then what any read checks (bad ids 400, unknown title or chunk 404, a
 * range outside the chunk 416), counted `bad_request`.
 * The status of a chunk answer is chosen before the first header: the chunk
 * is opened (a hit, or the first requested byte of a fill) first.
 */
export interface PeerServeDeps {
  view: SiteView
  /** the edge credential (REELCDN_EDGE_TOKEN); unset: every peer request is refused */
  token: string | undefined
  meta: MetaCache
  cache: ChunkCache
  fills: Coalescer
  reader: TitleReader
  /** a chunk's block list as the disk tier's index holds it */
  diskCrcs: (key: string) => Buffer | undefined
  /** chunk keys being answered to peers (shared with the peer source) */
  serving: Map<string, number>
  metrics: EdgePeerMetrics
  logger: Logger
  /** one per refusal reason, made on first use */
  logs: Map<string, IntervalLog>
}

const LOG_EVERY_MS = 10_000

type Reason = 'credential' | 'forbidden' | 'hop' | 'loop' | 'no_site' | 'not_member' | 'not_owner' | 'bad_request'

export class PeerRefusedError extends CdnError {
  override name = 'PeerRefusedError'
  constructor(message: string, readonly reason: Reason, statusCode: number, code: string) {
    super(message, { code, statusCode, source: 'client' })
  }
}

const FROM: Record<Source['result'], 'ram' | 'disk' | 'fill'> = { ram_hit: 'ram', disk_hit: 'disk', miss: 'fill', coalesced: 'fill' }

export function peerRoutes(d: PeerServeDeps): Route[] {
  const chunk = (rid: (m: Match) => string | undefined) => (req: IncomingMessage, res: ServerResponse, m: Match) =>
    counted(d, req, () => serveChunk(d, req, res, m.params[0]!, rid(m), m.params[m.params.length - 1]!))
  const crcs = (rid: (m: Match) => string | undefined) => (req: IncomingMessage, res: ServerResponse, m: Match) =>
    counted(d, req, () => serveCrcs(d, req, res, m.params[0]!, rid(m), m.params[m.params.length - 1]!))
  const none = () => undefined
  const second = (m: Match) => m.params[1]!
  return [
    { path: '/v1/peer/:id/chunk/:index', methods: { GET: chunk(none) } },
    { path: '/v1/peer/:id/chunk/:index/crcs', methods: { GET: crcs(none) } },
    { path: '/v1/peer/:id/r/:rid/chunk/:index', methods: { GET: chunk(second) } },
    { path: '/v1/peer/:id/r/:rid/chunk/:index/crcs', methods: { GET: crcs(second) } },
  ]
}

/** Runs a handler, counting its refusal by reason (the error goes on to lib/http/http.ts, which answers and logs it). */
async function counted(d: PeerServeDeps, req: IncomingMessage, fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    // a sibling that stopped waiting (ClientClosedError) was refused nothing
    const reason = err instanceof PeerRefusedError ? err.reason : err instanceof UnauthorizedError ? 'credential'
      : err instanceof CdnError && err.source === 'client' && !(err instanceof ClientClosedError) ? 'bad_request' : undefined
    if (reason !== undefined) refused(d, req, reason, err as CdnError)
    throw err
  }
}

/** Counts a refusal, and logs it (no stack; once per reason per `LOG_EVERY_MS`, with how many were not logged). */
function refused(d: PeerServeDeps, req: IncomingMessage, reason: Reason, err: CdnError): void {
  d.metrics.refused.inc({ reason })
  let log = d.logs.get(reason)
  if (log === undefined) d.logs.set(reason, log = new IntervalLog(LOG_EVERY_MS))
  const note = log.take()
  if (note === undefined) return
  const asker = req.headers[PEER_ID]
  const line = { reason, status: err.statusCode, code: err.code, url: req.url, asker: typeof asker === 'string' ? asker.slice(0, 64) : undefined, notLogged: note.skipped }
  // a sibling's view of the site lagging ours, or a request that is not ours to answer: expected now and then;
  // a credential, a member or a hop marker that is wrong: a misconfigured or hostile sender
  if (reason === 'not_owner' || reason === 'no_site' || reason === 'bad_request') d.logger.info(line, `peer request refused: ${err.message}`)
  else d.logger.warn(line, `peer request refused: ${err.message}`)
}

/** Checks 1-4 and what the request names: the chunk. */
async function admit(d: PeerServeDeps, req: IncomingMessage, rawId: string, rid: string | undefined, rawIndex: string): Promise<{ file: TitleFile; ref: ChunkRef }> {
  const h = req.headers
  if (d.token === undefined) throw new UnauthorizedError('peer fill is closed on this edge: set REELCDN_EDGE_TOKEN or edge.edgeTokenFile')
  const auth = h.authorization
  if (auth === undefined || !auth.startsWith('Bearer ')) throw new UnauthorizedError('a peer request needs the edge credential as Authorization: Bearer')
  if (!tokensEqual(auth.slice(7).trim(), d.token))
    throw new PeerRefusedError('the edge credential is not this site\'s (REELCDN_EDGE_TOKEN)', 'forbidden', 403, 'CDN_ERR_PEER_CREDENTIAL')
  const hop = h[PEER_HOP]
  if (typeof hop !== 'string' || !/^[0-9]{1,3}$/.test(hop) || Number(hop) < 1)
    throw new PeerRefusedError(`expected ${PEER_HOP}: 1, got ${JSON.stringify(hop ?? null)}`, 'hop', 400, 'CDN_ERR_PEER_HOP')
  if (Number(hop) !== 1)
    throw new PeerRefusedError(`${PEER_HOP}: ${hop}: a peer request is answered by the owner and never forwarded (one hop)`, 'loop', 508, 'CDN_ERR_PEER_LOOP')
  const v = d.view
  if (!v.active) throw new PeerRefusedError('this edge is in no site of several edges (edge.site, and the router\'s last heartbeat reply)', 'no_site', 421, 'CDN_ERR_PEER_NO_SITE')
  const asker = h[PEER_ID]
  if (typeof asker !== 'string' || asker === v.selfId || v.member(asker) === undefined)
    throw new PeerRefusedError(`${PEER_ID} ${JSON.stringify(asker ?? null)} is not another member of site ${v.site}`, 'not_member', 403, 'CDN_ERR_PEER_NOT_MEMBER')
  const id = parseContentId(rawId)
  const index = parseChunkIndex(rawIndex)
  if (!v.owns(id)) {
    throw new PeerRefusedError(`${id} is not owned by ${v.selfId} at site ${v.site} (its owners: ${v.owners(id).map(m => m.id).join(', ')})`,
      'not_owner', 421, 'CDN_ERR_PEER_NOT_OWNER')
  }
  const title = d.meta.peek(id) ?? await d.meta.fetch(id)
  const file = fileOf(title, rid)
  if (file === undefined) throw new NotFoundError(`rendition ${rid} of ${id}`)
  if (index >= file.chunks.length) throw new NotFoundError(`chunk ${index} of ${file.name} (it has ${file.chunks.length})`)
  return { file, ref: chunkRef(file, index) }
}

/** Marks `key` as answered to a peer while `fn` runs: its fill never asks a peer. */
async function serving<T>(d: PeerServeDeps, key: string, fn: () => Promise<T>): Promise<T> {
  d.serving.set(key, (d.serving.get(key) ?? 0) + 1)
  try {
    return await fn()
  } finally {
    const n = d.serving.get(key)! - 1
    if (n > 0) d.serving.set(key, n)
    else d.serving.delete(key)
  }
}

async function serveChunk(d: PeerServeDeps, req: IncomingMessage, res: ServerResponse, rawId: string, rid: string | undefined, rawIndex: string): Promise<void> {
  const { file, ref } = await admit(d, req, rawId, rid, rawIndex)
  const [from, to] = chunkRange(req.headers.range, ref)
  const base = ref.index * file.chunkSize
  await serving(d, ref.key, async () => {
    // a sibling's read, not a player's: in the peer counters below, none of the players' (bytes served, hit ratio)
    const first = { src: d.reader.openRam(file, ref.index, false, true) ?? await d.reader.open(file, ref.index, from, true, false, true, res) as Source | undefined, peer: true }
    try {
      const whole = from === 0 && to === ref.size - 1
      res.writeHead(whole ? 200 : 206, {
        'content-type': 'application/octet-stream', 'content-length': to - from + 1, etag: `"${ref.sha256}"`,
        ...(whole ? {} : { 'content-range': `bytes ${from}-${to}/${ref.size}` }), [PEER_FROM]: FROM[first.src!.result],
      })
      d.metrics.served.inc({ kind: 'chunk', from: FROM[first.src!.result] })
      await d.reader.writeRange(file, base + from, base + to, res, first, undefined, false)
      res.end()
      d.metrics.servedBytes.inc(to - from + 1)
    } finally {
      d.reader.release(first.src)
    }
  })
}

async function serveCrcs(d: PeerServeDeps, req: IncomingMessage, res: ServerResponse, rawId: string, rid: string | undefined, rawIndex: string): Promise<void> {
  const { ref } = await admit(d, req, rawId, rid, rawIndex)
  if (ref.blocks === undefined) throw new NotFoundError(`the block list of chunk ${refName(ref)} (its manifest lists none)`)
  const { list, from } = await serving(d, ref.key, () => blockList(d, ref, res))
  if (list === undefined) throw new NotFoundError(`the block list of chunk ${refName(ref)} (this edge's fill of it has none)`)
  d.metrics.served.inc({ kind: 'crcs', from })
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': list.length, etag: `"${ref.sha256}"` })
  res.end(list)
}

/**
 * The chunk's block list from wherever this edge has the chunk, or from the
 * fill it joins (or starts) for it. A sibling that stops waiting leaves that
 * fill, as a player does (edge/fill/coalesce.ts `leave`): one still waiting
 * for a slot that no one else wants is withdrawn.
 */
async function blockList(d: PeerServeDeps, ref: ChunkRef, res: ServerResponse): Promise<{ list: Buffer | undefined; from: 'ram' | 'disk' | 'fill' }> {
  for (;;) {
    const buf = d.cache.ram.get(ref.key)
    if (buf !== undefined) return { list: blockCrcs(buf), from: 'ram' }
    const onDisk = d.cache.disk.has(ref.key) ? d.diskCrcs(ref.key) : undefined
    if (onDisk !== undefined) return { list: onDisk, from: 'disk' }
    const got = d.fills.join(ref, 0)
    if (got === undefined) continue // cached meanwhile
    try {
      return { list: await untilClientGone(got.fill.blockList(), res), from: 'fill' }
    } catch (err) {
      if (err instanceof ClientClosedError) d.fills.leave(got.fill)
      throw err
    }
  }
}

/** The one range a peer may ask (`bytes=a-b` inside the chunk), as inclusive [from, to]; the whole chunk without one. */
function chunkRange(header: string | undefined, ref: ChunkRef): [number, number] {
  if (header === undefined) return [0, ref.size - 1]
  const m = /^bytes=([0-9]{1,15})-([0-9]{1,15})$/.exec(header)
  const from = m === null ? NaN : Number(m[1])
  const to = m === null ? NaN : Number(m[2])
  if (!(from <= to && to < ref.size)) throw new RangeNotSatisfiableError(ref.size)
  return [from, to]
}
