import t from 'tap'
import { jsonError, startSurfaces, threadOutcomes } from '../helpers/surfaces.js'

/**
 * Issue 14, item 7: a request with two Host fields was served (the first one
 * won). RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request
 * without a Host field, to any request with more than one Host field line,
 * and to one whose Host value is not `uri-host [ ":" port ]`. Each is our
 * JSON error naming the rule, never Node's bare 400.
 */
t.test('two Host fields, none on HTTP/1.1, or a bad value: 400 CDN_ERR_HOST on every service', async t => {
  for (const s of await startSurfaces(t)) {
    const before = await threadOutcomes(s, 'refused')
    for (const [head, what] of [
      ['GET PATH HTTP/1.1\r\nhost: a\r\nhost: b\r\n', 'two Host fields'],
      ['GET PATH HTTP/1.1\r\nhost: a\r\nx-a: 1\r\nHost: a\r\n', 'the same Host twice'],
      ['GET PATH HTTP/1.0\r\nhost: a\r\nhost: b\r\n', 'two Host fields on HTTP/1.0'],
      ['GET PATH HTTP/1.1\r\n', 'no Host on HTTP/1.1'],
      ['GET PATH HTTP/1.1\r\nhost: a b\r\n', 'a space in Host'],
      ['GET PATH HTTP/1.1\r\nhost: a/b\r\n', 'a slash in Host'],
      ['GET PATH HTTP/1.1\r\nhost: user@a\r\n', 'userinfo in Host'],
      ['GET PATH HTTP/1.1\r\nhost: a:80x\r\n', 'a port that is not digits'],
      ['GET PATH HTTP/1.1\r\nhost: a%zz\r\n', 'a bad percent-escape'],
    ] as const) {
      for (const r of await s.send(`${head.replace('PATH', s.good)}connection: close\r\n\r\n`)) {
        t.equal(r.status, 400, `${s.name}, ${what}: 400`)
        t.equal(jsonError(r)?.code, 'CDN_ERR_HOST', `${s.name}, ${what}: CDN_ERR_HOST`)
      }
    }
    for (const [host, what] of [['127.0.0.1:80', 'an address and port'], ['[::1]:8080', 'an IPv6 literal'], ['cdn.example', 'a name']] as const) {
      for (const r of await s.send(`GET ${s.good} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)) t.equal(r.status, 200, `${s.name}, ${what}: 200`)
    }
    if (s.threads) t.ok(await threadOutcomes(s, 'refused') > before, `${s.name}: the serve thread refused some itself`)
  }
})
