import t from 'tap'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { TitleData } from './title.js'
import { timedRead } from './timed-read.js'

const MiB = 1024 * 1024

/** A server answering /t/{start}-{end} with the title's bytes (206), the rest as each test says; counts connections. */
async function serve(t: { teardown(fn: () => Promise<void>): void }, title: TitleData, other: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_q, s) => void s.writeHead(404).end('nope')) {
  let connections = 0
  const server = http.createServer((req, res) => {
    const m = /^\/t\/(\d+)-(\d+)$/.exec(req.url ?? '')
    if (!m) return other(req, res)
    const body = title.bytes(Number(m[1]), Number(m[2]))
    res.writeHead(206, { 'content-length': body.length })
    res.end(body)
  })
  server.on('connection', () => { connections++ })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { server.closeAllConnections(); server.close(() => r()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections }
}

const targets = (url: string, title: TitleData, n: number, size: number) =>
  Array.from({ length: n }, (_, i) => ({ url: `${url}/t/${i * size}-${(i + 1) * size - 1}`, offset: i * size, length: size }))

t.test('reads every target in order on one kept connection, its bytes checked, and times it', async t => {
  const title = new TitleData('x', 24 * MiB, 8 * MiB)
  const s = await serve(t, title)
  const r = await timedRead(targets(s.url, title, 3, 8 * MiB), [process.pid], [], 100)
  t.equal(r.requests, 3)
  t.equal(r.bytes, 24 * MiB)
  t.ok(r.MBps > 0 && r.seconds > 0)
  t.equal(s.connections(), 1, 'one connection for every target')
})

t.test('a block out of place fails the run, naming its offset', async t => {
  const title = new TitleData('x', 4 * MiB, 4 * MiB)
  const s = await serve(t, title)
  // bytes of the second MiB where the first was expected
  await t.rejects(timedRead([{ url: `${s.url}/t/${MiB}-${2 * MiB - 1}`, offset: 0, length: MiB }], [], [], 100), /wrong bytes at title offset 0/)
})

t.test('a refusal fails the run with its status and body; so do a cut body, a chunked one and a short count', async t => {
  const title = new TitleData('x', 2 * MiB, 2 * MiB)
  const s = await serve(t, title, (req, res) => {
    if (req.url === '/cut') {
      res.writeHead(200, { 'content-length': 2 * MiB })
      res.write(title.bytes(0, MiB - 1))
      setTimeout(() => res.socket?.destroy(), 20)
    } else if (req.url === '/chunked') {
      res.writeHead(200)
      res.end('chunked by default')
    } else if (req.url === '/gone') res.writeHead(410).end('chunked refusal')
    else res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 13 }).end('no such title')
  })
  await t.rejects(timedRead([{ url: `${s.url}/missing`, offset: 0, length: MiB }], [], [], 100), /GET .*\/missing: 404 no such title/)
  await t.rejects(timedRead([{ url: `${s.url}/gone`, offset: 0, length: MiB }], [], [], 100), /GET .*\/gone: 410 [\s\S]*chunked refusal/)
  await t.rejects(timedRead([{ url: `${s.url}/cut`, offset: 0, length: 2 * MiB }], [], [], 100), /closed before the body's end/)
  await t.rejects(timedRead([{ url: `${s.url}/chunked`, offset: 0, length: 1 }], [], [], 100), /without a Content-Length/)
  await t.rejects(timedRead([{ url: `${s.url}/t/0-${MiB - 1}`, offset: 0, length: 2 * MiB }], [], [], 100), /1048576 bytes, expected 2097152/)
})

/** A raw server: each request's path picks a script of writes (strings or Buffers, with pauses between them as numbers of ms). */
async function rawServer(t: { teardown(fn: () => Promise<void>): void }, scripts: Record<string, Array<string | Buffer | number>>, after?: (path: string, sock: net.Socket) => void) {
  let connections = 0
  const socks = new Set<net.Socket>()
  const server = net.createServer(sock => {
    connections++
    socks.add(sock)
    sock.on('close', () => socks.delete(sock))
    sock.on('error', () => {})
    let pending = ''
    sock.on('data', async d => {
      pending += d.toString('latin1')
      for (let at = pending.indexOf('\r\n\r\n'); at >= 0; at = pending.indexOf('\r\n\r\n')) {
        const path = pending.slice(0, at).split(' ')[1]!
        pending = pending.slice(at + 4)
        for (const step of scripts[path] ?? ['HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n']) {
          if (typeof step === 'number') await new Promise(r => setTimeout(r, step))
          else sock.write(step)
        }
        after?.(path, sock)
      }
    })
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { for (const s of socks) s.destroy(); server.close(() => r()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections }
}

t.test('heads split over reads, interim answers, empty bodies, HTTP/1.0 and servers that let a kept connection go', async t => {
  const title = new TitleData('x', MiB, MiB)
  const body = title.bytes(0, MiB - 1)
  const s = await rawServer(t, {
    // the head a few bytes at a time, an interim 103 before it, no reason phrase
    '/split': ['HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n', 'HTTP/1.1 20', 5, '0\r\ncontent-le', 5, `ngth: ${MiB}\r\n`, 5, '\r\n', 5, body],
    '/empty': ['HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'],
    // HTTP/1.0 without keep-alive: the server closes after it
    '/old': [`HTTP/1.0 200 OK\r\ncontent-length: ${MiB}\r\n\r\n`, body],
    '/ok': [`HTTP/1.1 200 OK\r\ncontent-length: ${MiB}\r\n\r\n`, body],
    '/extra': [`HTTP/1.1 200 OK\r\ncontent-length: ${MiB}\r\n\r\n`, Buffer.concat([body, Buffer.from('stray')])],
  }, (path, sock) => { if (path === '/old') sock.end(); if (path === '/ok') setTimeout(() => sock.destroy(), 1) })
  const one = (path: string, length = MiB) => ({ url: `${s.url}${path}`, offset: 0, length })
  const r = await timedRead([one('/split'), one('/empty', 0), one('/split'), one('/old'), one('/split')], [], [], 100)
  t.equal(r.bytes, 4 * MiB, 'every body whole, the empty one too')
  t.equal(s.connections(), 2, 'one connection until the HTTP/1.0 answer, then a new one')
  // the server lets the kept connection go right after each /ok, as the next GET goes out (or before): it goes out on a new one
  const five = await timedRead(Array.from({ length: 5 }, () => one('/ok')), [], [], 100)
  t.equal(five.bytes, 5 * MiB)
  await t.rejects(timedRead([one('/extra')], [], [], 100), /bytes past the body's end/)
})

t.test('switching origin moves to a connection to the new one', async t => {
  const title = new TitleData('x', 2 * MiB, MiB)
  const a = await serve(t, title)
  const b = await serve(t, title)
  const r = await timedRead([...targets(a.url, title, 2, MiB), ...targets(b.url, title, 2, MiB), ...targets(a.url, title, 1, MiB)], [], [], 100)
  t.equal(r.bytes, 5 * MiB)
  t.same([a.connections(), b.connections()], [2, 1], 'a connection per run of one origin')
})
