import http from 'node:http'
import { request } from 'undici'

/**
 * `node dist/bench/lib/bare-upstream.js ROUTER_URL CONTENT_ID`: the fastest
 * upstream a Node edge could fill from, run as its own process next to the
 * router in the fill row. At start it copies one title from the router into
 * memory (its manifest, and every chunk's bytes and block list, as the router
 * answers them), then answers the three reads an edge fill makes, with the
 * router's own headers (ETag, Content-Length, Content-Range): one writeHead
 * and one write of a subarray per request, no verification, no logging, no
 * metrics. An edge filling from it shows the edge's own ceiling, apart from
 * what the router and the shards cost.
 */
const [routerUrl, contentId] = process.argv.slice(2)
if (!routerUrl || !contentId) {
  process.stderr.write('usage: bare-upstream.js ROUTER_URL CONTENT_ID\n')
  process.exit(2)
}

async function get(path: string): Promise<{ body: Buffer; etag: string | undefined }> {
  const r = await request(`${routerUrl}${path}`)
  const body = Buffer.from(await r.body.arrayBuffer())
  if (r.statusCode !== 200) throw new Error(`GET ${path}: ${r.statusCode} ${body.toString('utf8', 0, 200)}`)
  const etag = r.headers.etag
  return { body, etag: typeof etag === 'string' ? etag : undefined }
}

const meta = (await get(`/v1/content/${contentId}/meta`)).body
const count = (JSON.parse(meta.toString('utf8')) as { chunks: unknown[] }).chunks.length
const chunks: { bytes: Buffer; crcs: Buffer; etag: string | undefined }[] = []
for (let i = 0; i < count; i++) {
  const c = await get(`/v1/content/${contentId}/chunks/${i}`)
  const crcs = (await get(`/v1/content/${contentId}/chunks/${i}/crcs`)).body
  chunks.push({ bytes: c.body, crcs, etag: c.etag })
}

const CHUNK = new RegExp(`^/v1/content/${contentId}/chunks/(\\d+)(/crcs)?$`)
const RANGE = /^bytes=(\d+)-(\d+)$/

const server = http.createServer({ noDelay: true }, (req, res) => {
  if (req.url === `/v1/content/${contentId}/meta`) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': meta.length })
    return void res.end(meta)
  }
  const m = CHUNK.exec(req.url ?? '')
  const c = m ? chunks[Number(m[1])] : undefined
  if (c === undefined) {
    res.writeHead(404, { 'content-type': 'application/json' })
    return void res.end('{"error":{"code":"CDN_ERR_NOT_FOUND","message":"not in the bare upstream"}}')
  }
  const tag = c.etag === undefined ? {} : { etag: c.etag }
  if (m![2]) {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': c.crcs.length, ...tag })
    return void res.end(c.crcs)
  }
  const size = c.bytes.length
  const r = RANGE.exec(req.headers.range ?? '')
  const start = r ? Number(r[1]) : 0
  const end = r ? Math.min(Number(r[2]), size - 1) : size - 1
  res.writeHead(r ? 206 : 200, {
    'content-type': 'application/octet-stream', 'content-length': end - start + 1, ...tag,
    ...(r ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
  })
  res.end(c.bytes.subarray(start, end + 1))
})
server.listen(0, '127.0.0.1', () => {
  const a = server.address() as import('node:net').AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'bare upstream ready', url: `http://127.0.0.1:${a.port}` })}\n`)
})
process.once('SIGTERM', () => { server.close(); server.closeAllConnections() })
