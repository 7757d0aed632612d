import t from 'tap'
import http, { type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { clientGone, whenClientGone } from './client-gone.js'

/** clientGone / whenClientGone against a real node:http server on port 0: a response answered in full is not a client gone, one abandoned is. */
t.test('a finished response closes too, and is not a client gone; an abandoned one is, once', async t => {
  const seen: { res: ServerResponse; fired: number; off: () => void }[] = []
  const server = http.createServer((req, res) => {
    const s = { res, fired: 0, off: () => {} }
    s.off = whenClientGone(res, () => { s.fired++ })
    seen.push(s)
    if (req.url === '/answer') res.end('ok')
    else res.write('part') // and never ends: the client leaves
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const got = await fetch(`${url}/answer`)
  t.equal(await got.text(), 'ok')
  const answered = seen[0]!
  if (!answered.res.closed) await once(answered.res, 'close')
  t.ok(answered.res.destroyed, 'a finished response is destroyed once closed')
  t.notOk(clientGone(answered.res), 'but its client did not leave')
  t.equal(answered.fired, 0)

  const req = http.get(`${url}/abandon`)
  req.on('error', () => {})
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  res.once('data', () => req.destroy())
  await new Promise<void>(r => { const wait = () => seen.length > 1 && seen[1]!.res.closed ? r() : setTimeout(wait, 5); wait() })
  const abandoned = seen[1]!
  t.ok(clientGone(abandoned.res), 'an unfinished response whose connection closed')
  t.equal(abandoned.fired, 1, 'fired once')
  let late = 0
  whenClientGone(abandoned.res, () => { late++ })
  t.equal(late, 1, 'asked after the client left: at once')
  abandoned.off()
})
