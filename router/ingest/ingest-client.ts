import http from 'node:http'
import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { createHash } from 'node:crypto'
import { request } from 'undici'
import { z } from 'zod'
import { digestHeader } from '../../lib/integrity/digest.js'
import { BadRequestError, CdnError } from '../../lib/errors.js'
import type { Progress } from '../../lib/progress.js'

/**
 * What `reelcdn ingest` asks of its file and of the router, with every failure
 * named: the file (missing, unreadable, a directory), the router (unreachable,
 * or its answer — 401, 403, 409, 413, 507… — with its own message).
 *
 * Order, cheapest first: the file is checked (stat, then opened) and the
 * admin token shown to the router (`GET /v1/admin`) before the file is hashed,
 * which reads all of it: a wrong token used to cost a whole read of the file
 * and then surface as `write EPIPE` (putBody says why).
 *
 * An adaptive title (docs/abr.md) is uploaded in two steps: each rendition
 * file (putRendition), then the records that publish them (publishAdaptive).
 */

/** The file's size, once it is known to be a regular file we can open. */
export async function checkFile(file: string): Promise<number> {
  let st
  try {
    st = await stat(file)
  } catch (err) {
    throw fileError(file, err)
  }
  if (st.isDirectory()) throw new BadRequestError(`${file} is a directory: give the video file itself`, 'CDN_ERR_BAD_FILE')
  // a pipe or a device cannot be read twice (once to hash it, once to upload it)
  if (!st.isFile()) throw new BadRequestError(`${file} is not a regular file: it is read twice, to hash it and to upload it`, 'CDN_ERR_BAD_FILE')
  try {
    await (await open(file, 'r')).close()
  } catch (err) {
    throw fileError(file, err)
  }
  return st.size
}

/** A read of the file that failed, named by its path and in words. */
export function fileError(file: string, err: unknown): CdnError {
  if (err instanceof CdnError) return err
  const e = err as NodeJS.ErrnoException
  const why = e.code === 'ENOENT' ? `no such file: ${file}`
    : e.code === 'EACCES' || e.code === 'EPERM' ? `cannot read ${file}: permission denied`
      : e.code === 'EISDIR' ? `${file} is a directory: give the video file itself`
        : `cannot read ${file}: ${e.code ?? e.name}: ${e.message}`
  return new BadRequestError(why, 'CDN_ERR_BAD_FILE', { cause: err })
}

/** Shows the token to the router before any real work: a wrong or missing one is its 401, and an unreachable router is named. */
export async function checkAdmin(base: string, token: string | undefined): Promise<void> {
  let res
  try {
    res = await request(`${base}/v1/admin`, { method: 'GET', headers: authHeader(token), headersTimeout: 30_000, bodyTimeout: 30_000 })
  } catch (err) {
    throw unreachable(base, err)
  }
  const text = await res.body.text().catch(() => '')
  // a router from before this check: the upload will tell
  if (res.statusCode === 404 || res.statusCode === 405) return
  if (res.statusCode >= 300) throw routerError(res.statusCode, text, token)
}

export function authHeader(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {}
}

export function unreachable(base: string, err: unknown): CdnError {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } }
  const code = e.cause?.code ?? e.code
  return new CdnError(`cannot reach the router at ${base}: ${code ? `${code}: ` : ''}${e.cause?.message ?? e.message ?? String(err)}`,
    { code: 'CDN_ERR_UPSTREAM', statusCode: 502, source: 'upstream', retryable: true }, { cause: err })
}

/** A router's refusal, with its status, code and message, and what to do about a 401. */
export function routerError(status: number, text: string, token: string | undefined): CdnError {
  let json: { error?: { code?: string; message?: string } } | undefined
  try { json = JSON.parse(text) as typeof json } catch { /* not JSON: its text is the message */ }
  const e = json?.error
  let msg = `the router answered ${status}: ${e?.message ?? (text.trim().slice(0, 300) || http.STATUS_CODES[status])}`
  if (status === 401) msg += token === undefined
    ? ' (no admin token given: set REELCDN_ROUTER_TOKEN or --token-file)'
    : ' (check the admin token in REELCDN_ROUTER_TOKEN or --token-file)'
  return new CdnError(msg, { code: e?.code ?? 'CDN_ERR_UPSTREAM', statusCode: status, source: 'upstream' })
}

/**
 * PUTs `body` and resolves with the router's answer. A router that refuses an
 * upload answers early and closes the connection while the body is still
 * being sent; undici usually reads that answer, but when the close wins the
 * race the upload fails with the socket's error (EPIPE, ECONNRESET) instead.
 * Then the router is asked again whether it takes the token (its 401 is the
 * error), and otherwise the cut is reported with how far the upload got.
 */
export async function putBody(base: string, path: string, headers: Record<string, string>, body: Readable,
  progress: { sent: () => number; size: number }, token: string | undefined, signal?: AbortSignal): Promise<{ status: number; text: string }> {
  let res
  try {
    res = await request(`${base}${path}`, { method: 'PUT', body, headers, headersTimeout: 30 * 60 * 1000, ...(signal ? { signal } : {}) })
  } catch (err) {
    // the file, unreadable mid-upload
    if (err instanceof CdnError) throw err
    if (signal?.aborted) throw new CdnError(`interrupted after ${progress.sent()} of ${progress.size} bytes of the upload`, { code: 'CDN_ERR_INTERRUPTED', statusCode: 499, source: 'client' }, { cause: err })
    const code = (err as NodeJS.ErrnoException).code
    if (progress.sent() === 0 && CONNECT_ERRORS.has(code ?? '')) throw unreachable(base, err)
    await checkAdmin(base, token)
    throw new CdnError(`the router at ${base} closed the connection after ${progress.sent()} of ${progress.size} bytes of the upload, ` +
      `without an answer we could read (${code ?? (err as Error).message})`, { code: 'CDN_ERR_UPSTREAM', statusCode: 502, source: 'upstream', retryable: true }, { cause: err })
  }
  // an answer cut short still has its status
  const text = await res.body.text().catch(() => '')
  return { status: res.statusCode, text }
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])

/** What the title's Reelcdn-Meta header says (router/ingest/meta.ts), from the CLI's options. */
export interface MetaOptions {
  title?: string
  category: string[]
  regions?: string
  availableFrom?: string
  availableUntil?: string
}

export function titleMeta(id: string, o: MetaOptions, contentType: string): object {
  return {
    title: o.title ?? id,
    categories: o.category,
    contentType,
    rights: {
      regions: o.regions ? o.regions.split(',').map(r => r.trim().toUpperCase()).filter(Boolean) : ['*'],
      availableFrom: o.availableFrom ?? null,
      availableUntil: o.availableUntil ?? null,
    },
  }
}

/** JSON whose non-ASCII characters are \u escapes: header values must be ASCII. */
export function asciiJson(v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, c => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}

/** The router's answer to a rendition upload (docs/abr.md, "Ingest", step 1): the storage half of a rendition record. */
const storedSchema = z.object({
  version: z.string().regex(/^[0-9a-f]{16}$/),
  size: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  chunks: z.array(z.string().regex(/^[0-9a-f]{64}$/)).min(1),
  blocks: z.array(z.string().regex(/^[0-9a-f]{64}$/)).min(1),
}).passthrough()

export type StoredRendition = Pick<z.infer<typeof storedSchema>, 'version' | 'size' | 'sha256' | 'chunks' | 'blocks'>

export interface RenditionFile {
  id: string
  path: string
  size: number
  sha256: string
  contentType: string
}

/**
 * `PUT /v1/content/{id}/renditions/{rid}`: one rendition file, with its
 * digest; the router stores its chunks (nothing is visible yet) and answers
 * what it stored. Its size and digest must be this file's.
 */
export async function putRendition(base: string, contentId: string, f: RenditionFile, token: string | undefined,
  progress: { update(done: number): void; finish(note?: string): void }, signal?: AbortSignal): Promise<StoredRendition> {
  let sent = 0
  async function* counted() {
    try {
      for await (const b of createReadStream(f.path, { highWaterMark: 1024 * 1024 })) {
        sent += (b as Buffer).length
        progress.update(sent)
        yield b as Buffer
      }
    } catch (err) {
      throw fileError(f.path, err)
    }
  }
  const res = await putBody(base, `/v1/content/${contentId}/renditions/${f.id}`, {
    'content-length': String(f.size), 'content-digest': digestHeader(f.sha256), 'content-type': f.contentType, ...authHeader(token),
  }, Readable.from(counted()), { sent: () => sent, size: f.size }, token, signal).catch(err => {
    progress.finish('failed')
    throw err
  })
  progress.finish(res.status < 300 ? 'stored' : `failed (${res.status})`)
  if (res.status >= 300) throw routerError(res.status, res.text, token)
  let parsed
  try {
    parsed = storedSchema.safeParse(JSON.parse(res.text))
  } catch {
    parsed = undefined
  }
  if (!parsed?.success) throw new CdnError(`the router's answer to rendition ${f.id} is not {version, size, sha256, chunks, blocks}: ${res.text.slice(0, 200)}`,
    { code: 'CDN_ERR_UPSTREAM', statusCode: 502, source: 'upstream' })
  const s = parsed.data
  if (s.sha256 !== f.sha256 || s.size !== f.size) {
    throw new CdnError(`the router stored rendition ${f.id} as ${s.size} bytes with sha256 ${s.sha256}, but the file is ${f.size} bytes with sha256 ${f.sha256}`,
      { code: 'CDN_ERR_DIGEST', statusCode: 502, source: 'upstream' })
  }
  return { version: s.version, size: s.size, sha256: s.sha256, chunks: s.chunks, blocks: s.blocks }
}

export const ADAPTIVE_TYPE = 'application/vnd.reelcdn.adaptive+json'

/**
 * `PUT /v1/content/{id}` with the rendition records (docs/abr.md, "Ingest",
 * step 2): the router checks every record and chunk, then publishes the
 * title. Answers 201 (created) or 200 (exists: the same ladder); 409 for
 * another ladder under a published id.
 */
export async function publishAdaptive(base: string, contentId: string, meta: object, renditions: readonly object[], token: string | undefined): Promise<unknown> {
  const body = Buffer.from(JSON.stringify({ renditions }))
  let res
  try {
    res = await request(`${base}/v1/content/${contentId}`, {
      method: 'PUT', body,
      headers: { 'content-type': ADAPTIVE_TYPE, 'content-length': String(body.length), 'reelcdn-meta': asciiJson(meta), ...authHeader(token) },
      headersTimeout: 30 * 60 * 1000,
    })
  } catch (err) {
    throw unreachable(base, err)
  }
  const text = await res.body.text().catch(() => '')
  if (res.statusCode >= 300) throw routerError(res.statusCode, text, token)
  try { return JSON.parse(text) as unknown } catch { return text }
}

/** The file's SHA-256 (hex), read in 1 MiB pieces with `bar` moved along; a read error names the file. */
export async function hashFile(file: string, bar: Progress): Promise<string> {
  const h = createHash('sha256')
  let read = 0
  try {
    for await (const b of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      h.update(b as Buffer)
      read += (b as Buffer).length
      bar.update(read)
    }
  } catch (err) {
    throw fileError(file, err)
  }
  bar.finish()
  return h.digest('hex')
}
