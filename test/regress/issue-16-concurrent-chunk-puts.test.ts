import t from 'tap'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { startTestOrigin, sha256 } from '../helpers/origin.js'
import { until } from '../helpers/edge.js'

/**
 * From a review (stop 41): two PUTs of the same chunk with the same bytes at
 * once were both answered 201 "created", though only one created it. A
 * router deletes the copies its refused upload created (router/ingest/ingest.ts
 * `discard`): a 201 for a copy another upload made would let it delete that
 * one. The PUT that found the chunk stored by the other is answered 200, as
 * a PUT that found it there beforehand is.
 */
function put(port: number, head: string): { sock: net.Socket; answer: Promise<number> } {
  const sock = net.connect(port, '127.0.0.1')
  let got = ''
  const answer = new Promise<number>(resolve => {
    sock.on('data', d => { got += d.toString('latin1'); const m = /^HTTP\/1\.1 (\d{3})/.exec(got); if (m) resolve(Number(m[1])) })
    sock.on('close', () => resolve(0))
  })
  sock.on('error', () => {})
  sock.write(head)
  return { sock, answer }
}

t.test('two PUTs of the same chunk at once: one 201, one 200', async t => {
  const o = await startTestOrigin(t)
  const body = randomBytes(256 * 1024)
  const digest = Buffer.from(sha256(body), 'hex').toString('base64')
  const head = `PUT /v1/chunks/film.0123456789abcdef/0 HTTP/1.1\r\nhost: t\r\ncontent-digest: sha-256=:${digest}:\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`
  const a = put(o.port, head)
  const b = put(o.port, head)
  // both requests in before either body: each passes the "is it there already?" check
  await until(() => o.server.http.active === 2, 'both PUTs received')
  a.sock.write(body)
  b.sock.write(body)
  const answers = (await Promise.all([a.answer, b.answer])).sort()
  t.same(answers, [200, 201], 'one created it, the other found it')
  a.sock.destroy()
  b.sock.destroy()
})
