import http from 'node:http'
import { createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { digestFromHeader } from '../../lib/integrity/digest.js'
import { checkLadder, renditionSchema, type Rendition } from '../../lib/media/rendition.js'
import { versionFromDigest } from '../../router/cluster/keys.js'

/**
 * A stand-in for the router's side of an adaptive ingest (docs/abr.md,
 * "Ingest"), for the CLI's tests while that side lives on another branch:
 * `GET /v1/admin`, `GET /v1/content/{id}/meta`, `PUT
 * /v1/content/{id}/renditions/{rid}` (Content-Digest required, checked
 * against the body; answers `{status, version, size, sha256, chunkSize,
 * chunks, blocks}` as the router does) and the publish `PUT
 * /v1/content/{id}` (application/vnd.reelcdn.adaptive+json, every record
 * checked against the schema, the ladder rule and what was uploaded; 201,
 * 200 `exists` for the same ladder, 409 for another). It keeps what it was
 * asked, in order, and can refuse a rendition upload on demand.
 */
const TOKEN = 'fake-admin-token-0123456789'
const CHUNK = 1024 * 1024

export interface FakeRouter {
  url: string
  token: string
  /** `METHOD path` of every request, in order */
  requests: string[]
  /** published titles: their records and Reelcdn-Meta */
  titles: Map<string, { renditions: Rendition[]; meta: unknown }>
  /** rendition uploads: `${id}/${rid}` → the body's sha256 */
  stored: Map<string, string>
  /** answer this status to the next upload of rendition `rid` (once) */
  refuseNext(rid: string, status: number): void
}

export async function fakeRouter(t: { teardown(fn: () => unknown): void }): Promise<FakeRouter> {
  const requests: string[] = []
  const titles = new Map<string, { renditions: Rendition[]; meta: unknown }>()
  const stored = new Map<string, string>()
  const refusals = new Map<string, number>()
  const json = (res: http.ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  const error = (res: http.ServerResponse, status: number, code: string, message: string) => json(res, status, { error: { code, message } })

  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url!, 'http://x').pathname
    requests.push(`${req.method} ${path}`)
    const body: Buffer[] = []
    for await (const b of req) body.push(b as Buffer)
    const all = Buffer.concat(body)
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return error(res, 401, 'CDN_ERR_UNAUTHORIZED', 'missing or invalid bearer token')
    if (req.method === 'GET' && path === '/v1/admin') return json(res, 200, { admin: true })
    let m = /^\/v1\/content\/([^/]+)\/meta$/.exec(path)
    if (req.method === 'GET' && m) {
      const title = titles.get(m[1]!)
      return title ? json(res, 200, { contentId: m[1], renditions: title.renditions }) : error(res, 404, 'CDN_ERR_NOT_FOUND', `no title ${m[1]}`)
    }
    m = /^\/v1\/content\/([^/]+)\/renditions\/([^/]+)$/.exec(path)
    if (req.method === 'PUT' && m) {
      const [, id, rid] = m as unknown as [string, string, string]
      const refusal = refusals.get(rid)
      if (refusal) {
        refusals.delete(rid)
        return error(res, refusal, 'CDN_ERR_UNAVAILABLE', `refused rendition ${rid} (test)`)
      }
      const claimed = digestFromHeader(req.headers['content-digest'])
      if (!claimed) return error(res, 400, 'CDN_ERR_NO_DIGEST', 'a rendition upload needs Content-Digest')
      const sha256 = createHash('sha256').update(all).digest('hex')
      if (sha256 !== claimed) return error(res, 400, 'CDN_ERR_DIGEST', `rendition ${rid}: the body is ${sha256}, Content-Digest says ${claimed}`)
      stored.set(`${id}/${rid}`, sha256)
      const chunks: string[] = []
      const blocks: string[] = []
      for (let at = 0; at < all.length; at += CHUNK) {
        const c = all.subarray(at, at + CHUNK)
        chunks.push(createHash('sha256').update(c).digest('hex'))
        blocks.push(createHash('sha256').update('blocks').update(c).digest('hex'))
      }
      return json(res, 200, { status: 'stored', contentId: id, rendition: rid, version: versionFromDigest(sha256, CHUNK), size: all.length, sha256,
        chunkSize: CHUNK, chunks, blocks, replicas: { stored: chunks.length, resumed: 0 } })
    }
    m = /^\/v1\/content\/([^/]+)$/.exec(path)
    if (req.method === 'PUT' && m) {
      const id = m[1]!
      if (req.headers['content-type'] !== 'application/vnd.reelcdn.adaptive+json') return error(res, 415, 'CDN_ERR_TYPE', 'this fake takes adaptive publishes only')
      let rs: Rendition[]
      try {
        rs = ((JSON.parse(all.toString()) as { renditions: unknown[] }).renditions).map(r => renditionSchema.parse(r))
      } catch (err) {
        return error(res, 400, 'CDN_ERR_BAD_RENDITION', (err as Error).message)
      }
      const why = checkLadder(rs)
      if (why) return error(res, 400, 'CDN_ERR_BAD_LADDER', why)
      for (const r of rs) {
        if (stored.get(`${id}/${r.id}`) !== r.sha256 || r.version !== versionFromDigest(r.sha256, CHUNK))
          return error(res, 409, 'CDN_ERR_RENDITION_MISSING', `rendition ${r.id} of ${id} was not uploaded`)
      }
      const key = (x: Rendition[]) => x.map(r => `${r.id}:${r.sha256}`).sort().join()
      const had = titles.get(id)
      if (had) return key(had.renditions) === key(rs) ? json(res, 200, { status: 'exists', contentId: id }) : error(res, 409, 'CDN_ERR_CONFLICT', `title ${id} is published with another ladder`)
      titles.set(id, { renditions: rs, meta: JSON.parse(String(req.headers['reelcdn-meta'])) })
      return json(res, 201, { status: 'created', contentId: id, adaptive: true })
    }
    error(res, 404, 'CDN_ERR_NOT_FOUND', `the fake router has no ${req.method} ${path}`)
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: TOKEN, requests, titles, stored,
    refuseNext: (rid, status) => { refusals.set(rid, status) },
  }
}
