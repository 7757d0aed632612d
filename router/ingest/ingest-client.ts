import http from 'node:http'
import { open, stat } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { request } from 'undici'
import { BadRequestError, CdnError } from '../../lib/errors.js'

/**
 * What `reelcdn ingest` asks of its file and of the router, with every failure
 * named: the file (missing, unreadable, a directory), the router (unreachable,
 * or its answer — 401, 403, 409, 413, 507… — with its own message).
 *
 * Order, cheapest first: the file is checked (stat, then opened) and the
 * admin token shown to the router (`GET /v1/admin`) before the file is hashed,
 * which reads all of it: a wrong token used to cost a whole read of the file
 * and then surface as `write EPIPE` (putBody says why).
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
  progress: { sent: () => number; size: number }, token: string | undefined): Promise<{ status: number; text: string }> {
  let res
  try {
    res = await request(`${base}${path}`, { method: 'PUT', body, headers, headersTimeout: 30 * 60 * 1000 })
  } catch (err) {
    // the file, unreadable mid-upload
    if (err instanceof CdnError) throw err
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
