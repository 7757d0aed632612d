import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
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
