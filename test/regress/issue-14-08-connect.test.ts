import t from 'tap'
import { jsonError, startSurfaces } from '../helpers/surfaces.js'

/**
 * Issue 14, item 8: CONNECT got its connection closed without a status line
 * (Node emits 'connect' for it and, with no listener, destroys the socket).
 * Every service, serve threads included, answers it 405 with an Allow field
 * and our JSON error, as any other method it does not take. An Upgrade
 * request is a normal request whose Upgrade is ignored (RFC 9110 §7.8).
 */
t.test('CONNECT is answered 405 with Allow on every service, and Upgrade is ignored', async t => {
  for (const s of await startSurfaces(t)) {
    const { host } = new URL(s.base)
    for (const [line, what] of [[`CONNECT ${host} HTTP/1.1`, 'authority-form'], [`CONNECT ${s.good} HTTP/1.1`, 'a path'],
      ['CONNECT example.com:443 HTTP/1.0', 'HTTP/1.0']] as const) {
      for (const r of await s.send(`${line}\r\nhost: ${host}\r\n\r\n`)) {
        t.equal(r.status, 405, `${s.name}, CONNECT ${what}: 405`)
        t.match(r.head, /\r\nallow: [A-Z, ]*GET/i, `${s.name}, CONNECT ${what}: with Allow`)
        t.equal(jsonError(r)?.code, 'CDN_ERR_METHOD', `${s.name}, CONNECT ${what}: CDN_ERR_METHOD`)
        t.ok(r.closed, `${s.name}, CONNECT ${what}: then closed`)
      }
    }
    for (const r of await s.send(`GET ${s.good} HTTP/1.1\r\nhost: t\r\nconnection: upgrade, close\r\nupgrade: websocket\r\n\r\n`)) {
      t.equal(r.status, 200, `${s.name}, Upgrade: websocket: served, 200`)
      t.equal(Buffer.from(r.body, 'latin1').equals(s.body), true, `${s.name}, Upgrade: the body, not a switched protocol`)
    }
  }
})
