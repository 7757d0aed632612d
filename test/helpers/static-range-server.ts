import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { open, stat } from 'node:fs/promises'
import { join, normalize } from 'node:path'
import type { Test } from 'tap'
import { TokenBucket } from '../../client/token-bucket.js'
import { CdnError } from '../../lib/errors.js'
import { drained, planResponse, sendPlanned } from '../../lib/representation.js'

/**
 * A small static server for the ABR client's tests, standing in for the
 * router's and the edge's playlist routes (docs/abr.md): it serves the files of
 * one directory under a path prefix (`/v1/content/{id}/t/{token}/`, so a
 * request that lost the token is a 404), with byte ranges, If-Range and the
 * rest through lib/representation.ts, as the services answer.
 *
 *   bps       pace every body this server sends at this many bytes/s, shared by all
 *             its answers (a slow server, whoever the viewer is)
 *   fail(req) answer this status instead (a server that fails), when it returns one
 *   json      answer these paths (exact, no prefix) with this JSON: a /v1/play answer, a manifest at /meta
 * `log` lists each request (path and Range); `sent` counts body bytes written.
 */
export interface StaticServerOptions {
  dir: string
  prefix: string
  bps?: number
  fail?: (req: IncomingMessage) => number | undefined
  json?: Record<string, unknown>
}

const TYPES: Record<string, string> = { '.m3u8': 'application/vnd.apple.mpegurl', '.mp4': 'video/mp4', '.mpd': 'application/dash+xml' }
const PIECE = 16 * 1024

export async function staticRangeServer(t: Test, o: StaticServerOptions) {
  const log: { path: string; range: string | undefined }[] = []
  let sent = 0
  const pace = o.bps ? new TokenBucket(o.bps) : undefined
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    log.push({ path, range: req.headers.range })
    const status = o.fail?.(req)
    if (status) return void res.writeHead(status, { 'content-length': 0 }).end()
    if (o.json?.[path] !== undefined) {
      const body = JSON.stringify(o.json[path])
      return void res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
    }
    if (!path.startsWith(o.prefix)) return void res.writeHead(404, { 'content-length': 0 }).end()
    const rel = normalize(path.slice(o.prefix.length))
    if (rel.startsWith('..') || rel.includes('/')) return void res.writeHead(404, { 'content-length': 0 }).end()
    const file = join(o.dir, rel)
    const st = await stat(file).catch(() => undefined)
    if (!st?.isFile()) return void res.writeHead(404, { 'content-length': 0 }).end()
    const ext = rel.slice(rel.lastIndexOf('.'))
    let plan
    try {
      plan = planResponse(req, { size: st.size, etag: `"${st.size}-${Math.floor(st.mtimeMs)}"`, lastModified: st.mtimeMs,
        contentType: TYPES[ext] ?? 'application/octet-stream' }, 1)
    } catch (err) {
      const e = err as CdnError
      return void res.writeHead(e.statusCode ?? 500, { 'content-length': 0, ...e.headers }).end()
    }
    const fh = await open(file, 'r')
    try {
      await sendPlanned(res, plan, st.size, async (start, end, out) => {
        for (let at = start; at <= end; at += PIECE) {
          const n = Math.min(PIECE, end - at + 1)
          const buf = Buffer.allocUnsafe(n)
          await fh.read(buf, 0, n, at)
          if (pace) await pace.take(n)
          sent += n
          if (!out.write(buf)) await drained(out)
        }
      })
    } finally {
      await fh.close()
    }
  }
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { base, url: (file: string) => `${base}${o.prefix}${file}`, log, sent: () => sent }
}
