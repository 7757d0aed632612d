import { request, type Dispatcher } from 'undici'
import { UpstreamError, UpstreamTimeoutError } from '../../lib/errors.js'
import type { TokenBucket } from '../token-bucket.js'
import type { ByteRange } from './playlist.js'

/**
 * One GET of the HLS player: a playlist, or a byte range of a rendition file
 * (an init segment, a media segment), through the viewer's link.
 *
 * Each piece of the body is paid for in the link's token bucket before the
 * next is read, so the viewer never reads faster than its link (the paused
 * body stops the socket: the server is held to the link too). `onProgress`
 * sees the bytes so far after each piece and may give the download up (the
 * ABR abandon rule): the request is aborted and the bytes so far are
 * returned with `abandoned`. Bytes are kept only when `keep` asks for them
 * (a test that compares every byte); a load test only counts them.
 *
 * A wrong answer is an error naming the URL: a status other than 206 to a
 * range (200 means the server ignored it), a Content-Range that starts
 * elsewhere, a body shorter than asked for.
 */
export interface FetchOptions {
  dispatcher: Dispatcher
  /** per request: time to response headers, and the longest pause between body bytes (ms) */
  timeoutMs: number
  link?: TokenBucket | undefined
  signal?: AbortSignal | undefined
  keep?: boolean
  /** bytes so far and ms since the request; true gives the download up */
  onProgress?: ((loaded: number, elapsedMs: number) => boolean) | undefined
  /** every body byte received, as it lands (the player's counters) */
  onBytes?: ((n: number) => void) | undefined
}

export interface Fetched {
  /** the bytes when `keep`, else an empty Buffer */
  body: Buffer
  loaded: number
  ms: number
  abandoned: boolean
}

export async function fetchRange(url: string, range: ByteRange | undefined, o: FetchOptions): Promise<Fetched> {
  const t0 = performance.now()
  const ac = new AbortController()
  const onAbort = () => ac.abort(o.signal?.reason)
  o.signal?.addEventListener('abort', onAbort, { once: true })
  const want = range?.length
  const headers: Record<string, string> = range && want !== undefined ? { range: `bytes=${range.offset}-${range.offset + want - 1}` } : {}
  const pieces: Buffer[] = []
  let loaded = 0
  let abandoned = false
  try {
    if (o.signal?.aborted) throw o.signal.reason
    const res = await request(url, { method: 'GET', dispatcher: o.dispatcher, headers, signal: ac.signal,
      headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs })
    const ranged = headers.range !== undefined
    if (res.statusCode !== (ranged ? 206 : 200)) {
      await res.body.dump().catch(() => {})
      throw new UpstreamError(`${url} answered ${res.statusCode} to ${ranged ? `a range request (${headers.range})` : 'a GET'}`)
    }
    if (ranged) {
      const cr = /^bytes (\d+)-(\d+)\//.exec(String(res.headers['content-range'] ?? ''))
      if (!cr || Number(cr[1]) !== range!.offset || Number(cr[2]) !== range!.offset + want! - 1) {
        await res.body.dump().catch(() => {})
        throw new UpstreamError(`${url} answered ${headers.range} with Content-Range ${JSON.stringify(res.headers['content-range'])}`)
      }
    }
    for await (const piece of res.body as AsyncIterable<Buffer>) {
      loaded += piece.length
      o.onBytes?.(piece.length)
      if (o.keep) pieces.push(piece)
      if (o.link) await o.link.take(piece.length, ac.signal)
      if (o.onProgress?.(loaded, performance.now() - t0)) {
        abandoned = true
        ac.abort()
        break
      }
    }
    if (!abandoned && want !== undefined && loaded !== want) throw new UpstreamError(`${url} ended the body after ${loaded} of ${want} bytes`)
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') throw new UpstreamTimeoutError(url, { cause: err })
    throw err
  } finally {
    o.signal?.removeEventListener('abort', onAbort)
  }
  const body = o.keep ? Buffer.concat(pieces) : Buffer.alloc(0)
  return { body: want !== undefined && body.length > want ? body.subarray(0, want) : body, loaded, ms: performance.now() - t0, abandoned }
}

/** A playlist's text (playlists are small: kept whole). */
export async function fetchText(url: string, o: FetchOptions): Promise<string> {
  return (await fetchRange(url, undefined, { ...o, keep: true, onProgress: undefined })).body.toString('utf8')
}
