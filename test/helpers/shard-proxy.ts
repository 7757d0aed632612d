import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Transform } from 'node:stream'
import { BLOCK_LIST } from '../../lib/integrity/block-list-header.js'

/**
 * A proxy in front of one origin shard, to make it misbehave in ways a real
 * shard would only by accident: wrong bytes at a chunk offset, 5xx answers,
 * a body that stalls part-way, a wrong block list. Requests pass through
 * untouched otherwise, and every chunk request is recorded with its Range.
 */
export interface ShardFaults {
  /** flip the byte at this offset of every chunk it passes (GET /v1/chunks/{id}/{i}) */
  corruptAt?: number
  /** flip a byte of every block list (GET …/crcs) */
  corruptCrcs?: boolean
  /** flip a byte of the block list a chunk answer carries in its head (lib/integrity/block-list-header.ts) */
  corruptHeadCrcs?: boolean
  /** forward block list requests (GET …/crcs) only once this settles */
  holdCrcs?: Promise<unknown>
  /** answer chunk GETs with this status instead of forwarding them */
  status?: number
  /** forward only this many body bytes of a chunk GET, then go silent (socket left open) */
  stallAfter?: number
}

export interface ShardProxy {
  port: number
  /** `${method} ${path} ${range}` of each chunk request, in order */
  log: string[]
  faults: ShardFaults
  /** requests under a fill grant (an edge's), each with when its connection was opened (performance.now()) */
  granted: { url: string; openedAt: number }[]
  /** when each connection to the proxy was opened (performance.now()) */
  opened: number[]
  close(): Promise<void>
}

export async function shardProxy(port: number, target: number, faults: ShardFaults = {}): Promise<ShardProxy> {
  const log: string[] = []
  const granted: ShardProxy['granted'] = []
  const open = new Set<http.ServerResponse>()
  const server = http.createServer((req, res) => {
    const url = req.url ?? ''
    const isChunk = /^\/v1\/chunks\/[^/]+\/\d+$/.test(url) && req.method === 'GET'
    const isCrcs = /^\/v1\/chunks\/[^/]+\/\d+\/crcs$/.test(url) && req.method === 'GET'
    if (isChunk || isCrcs) log.push(`${req.method} ${url} ${req.headers.range ?? ''}`)
    if (String(req.headers.authorization ?? '').startsWith('Grant ')) granted.push({ url, openedAt: opened.get(req.socket) ?? NaN })
    if (isChunk && proxy.faults.status) {
      req.resume()
      return void res.writeHead(proxy.faults.status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { code: 'CDN_ERR_INTERNAL', message: 'injected fault' } }))
    }
    const up = http.request({ host: '127.0.0.1', port: target, method: req.method, path: url, headers: req.headers }, ur => {
      const listed = ur.headers[BLOCK_LIST]
      if (isChunk && proxy.faults.corruptHeadCrcs && typeof listed === 'string') {
        const crcs = Buffer.from(listed, 'base64')
        crcs[0] ^= 0xff
        ur.headers[BLOCK_LIST] = crcs.toString('base64')
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers)
      let at = isChunk ? Number(/^bytes (\d+)-/.exec(String(ur.headers['content-range'] ?? ''))?.[1] ?? 0) : 0
      let sent = 0
      const f = proxy.faults
      const alter = new Transform({
        transform(piece: Buffer, _enc, done) {
          let out = piece
          if (isChunk && f.corruptAt !== undefined && f.corruptAt >= at && f.corruptAt < at + piece.length) {
            out = Buffer.from(piece)
            out[f.corruptAt - at] ^= 0xff
          }
          if (isCrcs && f.corruptCrcs && piece.length > 0) {
            out = Buffer.from(piece)
            out[0] ^= 0xff
          }
          at += piece.length
          if (isChunk && f.stallAfter !== undefined) {
            const room = f.stallAfter - sent
            if (room <= 0) return done()
            if (out.length > room) out = out.subarray(0, room)
          }
          sent += out.length
          done(null, out)
        },
        flush(done) {
          // a stalled body never ends: the socket stays open and silent
          if (isChunk && f.stallAfter !== undefined && sent >= f.stallAfter) return
          done()
        },
      })
      ur.pipe(alter).pipe(res)
    })
    up.on('error', () => res.destroy())
    open.add(res)
    res.on('close', () => { open.delete(res); up.destroy() })
    const go = () => { req.pipe(up) }
    if (isCrcs && proxy.faults.holdCrcs) proxy.faults.holdCrcs.then(go, go)
    else go()
  })
  const opened = new WeakMap<object, number>()
  const openedAt: number[] = []
  server.on('connection', s => { const now = performance.now(); opened.set(s, now); openedAt.push(now) })
  await new Promise<void>(r => server.listen(port, '127.0.0.1', r))
  const proxy: ShardProxy = {
    granted,
    opened: openedAt,
    port: (server.address() as AddressInfo).port,
    log,
    faults,
    async close() {
      for (const r of open) r.destroy()
      server.closeAllConnections()
      await new Promise<void>(r => server.close(() => r()))
    },
  }
  return proxy
}
