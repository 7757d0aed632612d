import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import { ClientClosedError, PreconditionFailedError, RangeNotSatisfiableError } from './errors.js'
import { contentRange, multipartPlan, parseRange, type ByteRange, type MultipartPlan } from './http/range.js'
import { memoized } from './memo.js'

/**
 * How a GET or HEAD of a byte representation is answered (RFC 9110 §13-14):
 * preconditions first (412/304), then If-Range, then Range (206/416). Origin,
 * router and edge share it so the three speak one contract; each supplies only
 * the bytes.
 */
export interface Representation {
  size: number
  /** strong entity tag, quoted: `"abc…"` */
  etag: string
  lastModified: number
  contentType: string
  cacheControl?: string
  /** e.g. Repr-Digest */
  extra?: OutgoingHttpHeaders
  /** this object answers many requests and never changes: its headers are built once (the edge's titles) */
  reused?: boolean
}

export interface ResponsePlan {
  status: 200 | 206 | 304
  /** null: the whole representation */
  ranges: ByteRange[] | null
  headers: OutgoingHttpHeaders
  multipart: MultipartPlan | null
  length: number
}

/** Last-Modified values by time: a title's or a chunk's answers all carry one, formatted once (it was 1–2.5 % of a shard's busy time) */
const httpDate = memoized(1024, (ms: number) => new Date(ms).toUTCString())

/** Entity-tag list match; `weak` compares opaque-tags only (If-None-Match), strong needs two strong tags (If-Match). */
function tagListMatches(list: string, etag: string, weak: boolean): boolean {
  if (list.trim() === '*') return true
  const opaque = etag.startsWith('W/') ? etag.slice(2) : etag
  for (let raw of list.split(',')) {
    raw = raw.trim()
    const isWeak = raw.startsWith('W/')
    if (isWeak && !weak) continue
    if ((isWeak ? raw.slice(2) : raw) === opaque && (weak || !etag.startsWith('W/'))) return true
  }
  return false
}

function parseDate(s: string | undefined): number {
  if (s === undefined) return NaN
  return Date.parse(s)
}

/** The headers every answer of a representation carries, built once per Representation object (treat one as immutable). */
const repHeaders = new WeakMap<Representation, OutgoingHttpHeaders>()

function baseHeaders(rep: Representation): OutgoingHttpHeaders {
  let b = rep.reused ? repHeaders.get(rep) : undefined
  if (b === undefined) {
    b = {
      'accept-ranges': 'bytes',
      etag: rep.etag,
      'last-modified': httpDate(rep.lastModified),
      ...(rep.cacheControl ? { 'cache-control': rep.cacheControl } : {}),
      ...rep.extra,
    }
    if (rep.reused) repHeaders.set(rep, b)
  }
  return b
}

export function planResponse(req: IncomingMessage, rep: Representation, maxRanges: number): ResponsePlan {
  const h = req.headers
  const lastModSec = Math.floor(rep.lastModified / 1000) * 1000
  const base = baseHeaders(rep)
  const headers: OutgoingHttpHeaders = rep.reused ? { ...base } : base
  // RFC 9110 §13.2.2, in order
  if (h['if-match'] !== undefined) {
    if (!tagListMatches(h['if-match'], rep.etag, false)) throw new PreconditionFailedError('If-Match does not match the current entity tag')
  } else {
    const ius = parseDate(h['if-unmodified-since'])
    if (!Number.isNaN(ius) && lastModSec > ius) throw new PreconditionFailedError('modified since If-Unmodified-Since')
  }
  if (h['if-none-match'] !== undefined) {
    if (tagListMatches(h['if-none-match'], rep.etag, true)) return { status: 304, ranges: null, headers, multipart: null, length: 0 }
  } else {
    const ims = parseDate(h['if-modified-since'])
    if (!Number.isNaN(ims) && lastModSec <= ims) return { status: 304, ranges: null, headers, multipart: null, length: 0 }
  }
  let range = req.method === 'GET' || req.method === 'HEAD' ? h.range : undefined
  const ifRange = h['if-range'] as string | undefined
  if (range !== undefined && ifRange !== undefined) {
    // If-Range: a strong tag must match exactly; a date must equal Last-Modified exactly
    const ok = ifRange.startsWith('"') ? ifRange === rep.etag && !rep.etag.startsWith('W/')
      : ifRange.startsWith('W/') ? false
        : parseDate(ifRange) === lastModSec
    if (!ok) range = undefined
  }
  const ranges = parseRange(range, rep.size, maxRanges)
  if (ranges === 'unsatisfiable') throw new RangeNotSatisfiableError(rep.size)
  if (ranges === null) {
    headers['content-type'] = rep.contentType
    headers['content-length'] = rep.size
    return { status: 200, ranges: null, headers, multipart: null, length: rep.size }
  }
  if (ranges.length === 1) {
    const r = ranges[0]!
    headers['content-type'] = rep.contentType
    headers['content-length'] = r.end - r.start + 1
    headers['content-range'] = contentRange(r, rep.size)
    return { status: 206, ranges, headers, multipart: null, length: r.end - r.start + 1 }
  }
  const mp = multipartPlan(ranges, rep.size, rep.contentType, randomBytes(12).toString('hex'))
  headers['content-type'] = mp.contentType
  headers['content-length'] = mp.length
  return { status: 206, ranges, headers, multipart: mp, length: mp.length }
}

/** Whether the planned answer carries body bytes (not a 304, a HEAD or an empty selection). */
export function hasBody(req: IncomingMessage, plan: ResponsePlan): boolean {
  return plan.status !== 304 && req.method !== 'HEAD' && plan.length > 0
}

/** Writes `[start, end]` (inclusive) of the representation to the response, honouring backpressure. */
export type RangeWriter = (start: number, end: number, res: ServerResponse) => Promise<void>

/**
 * Sends the planned response; `write` supplies bytes. The status and headers
 * are set but not flushed: they go out with the first byte the writer sends,
 * so a writer that fails before its first byte (a corrupt block, an upstream
 * that never answered) still gets a proper error response from `sendError`.
 */
export async function sendPlanned(res: ServerResponse, plan: ResponsePlan, size: number, write: RangeWriter): Promise<void> {
  res.statusCode = plan.status
  for (const k in plan.headers) res.setHeader(k, plan.headers[k]!)
  if (!hasBody(res.req, plan)) return void res.end()
  if (plan.multipart) {
    const mp = plan.multipart
    for (let i = 0; i < plan.ranges!.length; i++) {
      res.write(mp.heads[i]!)
      await write(plan.ranges![i]!.start, plan.ranges![i]!.end, res)
    }
    res.end(mp.tail)
    return
  }
  const r = plan.ranges ? plan.ranges[0]! : { start: 0, end: size - 1 }
  await write(r.start, r.end, res)
  res.end()
}

/** Resolves when the response can take more data, or rejects when the client has gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) return reject(new ClientClosedError())
    const onDrain = () => { res.off('close', onClose); resolve() }
    const onClose = () => { res.off('drain', onDrain); reject(new ClientClosedError()) }
    res.once('drain', onDrain)
    res.once('close', onClose)
  })
}
