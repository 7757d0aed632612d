import t from 'tap'
import { startSurfaces, threadOutcomes } from '../helpers/surfaces.js'

/**
 * Issue 14, item 6: `GET http://host:port/path HTTP/1.1` (the absolute-form
 * of the request-target) was answered 404 on every service, the whole URL
 * taken for a path. RFC 9112 §3.2.2: a server MUST accept it, take the target
 * from it and ignore the Host field. A scheme other than the connection's is
 * a request for another origin: 421 (RFC 9110 §7.4).
 */
t.test('an absolute-form request-target is served like its origin-form on every service', async t => {
  for (const s of await startSurfaces(t)) {
    const { host } = new URL(s.base)
    const before = await threadOutcomes(s, 'served') + await threadOutcomes(s, 'relayed')
    for (const [target, hostField, what] of [
      [`http://${host}${s.good}`, host, 'matching Host'],
      [`http://${host}${s.good}`, 'elsewhere.example', 'another Host (ignored)'],
      [`HTTP://${host.toUpperCase()}${s.good}?x=1`, 't', 'scheme and host in capitals, with a query'],
    ] as const) {
      for (const r of await s.send(`GET ${target} HTTP/1.1\r\nhost: ${hostField}\r\nconnection: close\r\n\r\n`)) {
        t.equal(r.status, 200, `${s.name}, ${what}: 200`)
        t.equal(Buffer.from(r.body, 'latin1').equals(s.body), true, `${s.name}, ${what}: the whole body`)
      }
    }
    for (const r of await s.send(`GET https://${host}${s.good} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)) {
      t.equal(r.status, 421, `${s.name}: an https target over plain HTTP is misdirected, 421`)
    }
    if (s.threads) t.ok(await threadOutcomes(s, 'served') + await threadOutcomes(s, 'relayed') > before, `${s.name}: the serve thread took some`)
  }
})
