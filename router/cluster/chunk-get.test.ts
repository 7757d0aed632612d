import t, { type Test } from 'tap'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { ChunkGetPool, type ChunkGetOptions } from './chunk-get.js'

const O: ChunkGetOptions = { connections: 2, connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 300, keepAliveMs: 4000 }

async function serve(t: Test, h: http.RequestListener): Promise<{ pool: ChunkGetPool; sockets: Set<Socket> }> {
  const srv = http.createServer(h)
  const sockets = new Set<Socket>()
  srv.on('connection', s => sockets.add(s))
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  const pool = new ChunkGetPool('127.0.0.1', (srv.address() as AddressInfo).port, O)
  t.teardown(() => { pool.close(); srv.closeAllConnections(); srv.close() })
  return { pool, sockets }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise(r => setImmediate(r))
  for (let i = 0; i < 200 && !cond(); i++) await new Promise(r => setTimeout(r, 10))
  if (!cond()) throw new Error(`timed out waiting for ${what}`)
}

const body = randomBytes(3 * 1024 * 1024 + 17)

t.test('ranges come back byte-exact, three requests over one kept-alive socket', async t => {
  const { pool, sockets } = await serve(t, (req, res) => {
    const [s, e] = /bytes=(\d+)-(\d+)/.exec(req.headers.range!)!.slice(1).map(Number) as [number, number]
    res.writeHead(206, { 'content-range': `bytes ${s}-${e}/${body.length}`, 'content-length': e - s + 1 })
    res.end(body.subarray(s, e + 1))
  })
  for (const [s, e] of [[0, body.length - 1], [5, 70000], [1024 * 1024, 2 * 1024 * 1024 + 3]] as const) {
    const r = await pool.get('/x', { range: `bytes=${s}-${e}` })
    t.equal(r.statusCode, 206)
    const got: Buffer[] = []
    for await (const b of r) got.push(Buffer.from(b))
    t.ok(Buffer.concat(got).equals(body.subarray(s, e + 1)), `bytes ${s}-${e}`)
  }
  t.equal(sockets.size, 1, 'one connection')
})

t.test('a consumer that stops reading stops the socket: the server cannot send the whole body', async t => {
  const size = 64 * 1024 * 1024
  const piece = Buffer.alloc(1024 * 1024, 1)
  let accepted = 0
  let blocked = false
  const { pool } = await serve(t, (_req, res) => {
    res.writeHead(206, { 'content-range': `bytes 0-${size - 1}/${size}`, 'content-length': size })
    let off = 0
    const go = (): void => {
      while (off < size) {
        off += piece.length
        // counted once the kernel took it
        if (!res.write(piece, () => { accepted += piece.length })) { blocked = true; res.once('drain', go); return }
      }
      res.end()
    }
    go()
  })
  const r = await pool.get('/x', { range: `bytes=0-${size - 1}` })
  const it = r[Symbol.asyncIterator]()
  await it.next()
  await until(() => blocked, 'the server waiting for a drain')
  // let whatever the kernel still takes arrive: the bound below only gets stricter
  await new Promise(res => setTimeout(res, 200))
  t.ok(accepted < size / 2, `the server's kernel took ${accepted} bytes of ${size}, not the whole body`)
  r.destroy()
})

t.test('a body that breaks off or falls silent ends the iterator with an error named like undici\'s', async t => {
  const { pool } = await serve(t, (req, res) => {
    res.writeHead(206, { 'content-range': 'bytes 0-999999/1000000', 'content-length': 1000000 })
    res.write(body.subarray(0, 1000))
    if (req.url === '/reset') setImmediate(() => res.destroy())
  })
  const drain = async (path: string) => { for await (const _ of await pool.get(path, {})) { /* drain */ } }
  await t.rejects(drain('/reset'), { code: 'UND_ERR_SOCKET' }, 'reset mid-body')
  await t.rejects(drain('/silent'), { code: 'UND_ERR_BODY_TIMEOUT' }, 'silent past bodyTimeoutMs')
})

t.test('a kept-alive socket the server closed meanwhile: the request goes out again on a new one', async t => {
  const { pool, sockets } = await serve(t, (_req, res) => {
    res.writeHead(206, { 'content-range': 'bytes 0-9/10', 'content-length': 10 })
    res.end(body.subarray(0, 10))
  })
  for await (const _ of await pool.get('/x', {})) { /* drain */ }
  const [first] = sockets
  first!.destroy()
  await until(() => first!.destroyed, 'the server closed the socket')
  const r = await pool.get('/x', {})
  const got: Buffer[] = []
  for await (const b of r) got.push(Buffer.from(b))
  t.ok(Buffer.concat(got).equals(body.subarray(0, 10)))
  t.equal(sockets.size, 2, 'a second connection')
})

t.test('onDone set after a small body already ended is told at once (the shard client counts its outstanding requests down by it)', async t => {
  const { pool } = await serve(t, (_req, res) => {
    res.writeHead(412, { 'content-type': 'application/json', 'content-length': 2 })
    res.end('{}')
  })
  const r = await pool.get('/x', { range: 'bytes=0-9' })
  t.equal(r.statusCode, 412)
  await until(() => r.left === 0, 'the refusal body')
  let told = 0
  r.onDone = () => { told++ }
  t.equal(await r.text(), '{}')
  t.equal(told, 1, 'told once')
})
