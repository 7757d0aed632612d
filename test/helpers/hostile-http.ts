import net from 'node:net'
import type { Test } from 'tap'
import { raw, stillServes, type Raw, type Surface } from './hostile.js'

/**
 * The hostile battery's request-line and header-field cases: the rules of
 * RFC 9112 (§2.3 versions, §3 the request-line, §3.2 request-target forms
 * and Host, §5 field syntax, §6 framing) and RFC 9110 (§9 methods, §7.2
 * Host, §10.1.1 Expect), as a class. Each case asserts the one status the
 * RFC (or, where it leaves a choice, lib/http/http-conformance.ts) gives, the JSON
 * error code naming the rule, and that exactly one answer came back, whoever
 * gave it: Node's parser refuses some cases before any handler runs.
 *
 * On a surface with `repeat`, every case is sent that many times on fresh
 * connections (an edge's serve threads and its main thread each take some).
 */
interface Want {
  status: number
  /** the JSON error's code */
  code?: string
  /** the connection is closed after the answer */
  closed?: boolean
  /** the answer carries an Allow field (and, when a string, exactly that one) */
  allow?: boolean | string
}

/** at once: a burst of connections is what lets a second accepting thread take some (one at a time, the main thread takes most) */
const answers = (s: Surface, data: string): Promise<Raw[]> => Promise.all(Array.from({ length: s.repeat ?? 1 }, () => raw(s.base, data)))

const errorOf = (r: Raw) => { try { return (JSON.parse(r.body) as { error: { code: string; message: string } }).error } catch { return undefined } }

async function expect(t: Test, s: Surface, what: string, data: string, want: Want): Promise<Raw[]> {
  const got = await answers(s, data)
  for (const r of got) {
    t.equal(r.status, want.status, `${what}: ${want.status}`)
    if (want.code !== undefined) {
      const e = errorOf(r)
      t.equal(e?.code, want.code, `${what}: ${want.code}`)
      t.ok((e?.message.length ?? 0) > 10, `${what}: a message saying what was wrong`)
    }
    if (want.status >= 400) t.equal((`${r.head}\r\n\r\n${r.body}`.match(/HTTP\/1\.[01] \d{3} /g) ?? []).length, 1, `${what}: one answer, no second`)
    if (want.closed) t.ok(r.closed, `${what}: the connection closed after it`)
    if (want.allow !== undefined) {
      const allow = /\r\nallow: ([^\r]*)/i.exec(r.head)?.[1]
      if (typeof want.allow === 'string') t.equal(allow, want.allow, `${what}: Allow: ${want.allow}`)
      else t.ok(allow !== undefined && /\bGET\b/.test(allow), `${what}: an Allow field (${allow})`)
    }
  }
  return got
}

const req = (line: string, fields = 'host: t\r\n') => `${line}\r\n${fields}connection: close\r\n\r\n`

export async function requestLineCases(t: Test, s: Surface): Promise<void> {
  const { host } = new URL(s.base)
  const g = s.good

  await t.test('every method: defined ones a resource does not take are 405 with Allow, unknown ones 501', async t => {
    const [options] = await expect(t, s, `OPTIONS ${g}`, req(`OPTIONS ${g} HTTP/1.1`), { status: 204, allow: true })
    const allow = (/\r\nallow: ([^\r]*)/i.exec(options!.head)?.[1] ?? '').split(/, */)
    t.ok(['GET', 'HEAD', 'OPTIONS'].every(m => allow.includes(m)), `the good path takes GET, HEAD and OPTIONS (Allow: ${allow.join(', ')})`)
    await expect(t, s, 'GET', req(`GET ${g} HTTP/1.1`), { status: 200 })
    const head = await expect(t, s, 'HEAD', req(`HEAD ${g} HTTP/1.1`), { status: 200 })
    t.equal(head[0]!.body, '', 'HEAD: no body')
    for (const m of ['POST', 'PUT', 'DELETE', 'PATCH', 'TRACE'].filter(m => !allow.includes(m))) {
      const got = await expect(t, s, m, req(`${m} ${g} HTTP/1.1`, 'host: t\r\nx-echo-me: secret-marker\r\ncontent-length: 0\r\n'),
        { status: 405, code: 'CDN_ERR_METHOD', allow: allow.join(', ') })
      if (m === 'TRACE') t.notMatch(got[0]!.body, /secret-marker/, 'TRACE: the request is never echoed')
    }
    await expect(t, s, 'CONNECT', req(`CONNECT ${host} HTTP/1.1`, `host: ${host}\r\n`), { status: 405, code: 'CDN_ERR_METHOD', allow: true, closed: true })
    for (const m of ['FOO', 'BREW', 'PROPFIND', 'M-SEARCH', 'get', 'Get']) {
      await expect(t, s, `${m} (methods are case-sensitive tokens)`, req(`${m} ${g} HTTP/1.1`), { status: 501, code: 'CDN_ERR_UNKNOWN_METHOD' })
    }
    await expect(t, s, 'a method that is not a token', req(`GE(T ${g} HTTP/1.1`), { status: 400, code: 'CDN_ERR_REQUEST_LINE', closed: true })
    await stillServes(t, s, 'methods')
  })

  await t.test('versions: 1.1 and 1.0 are served, other well-formed ones 505, malformed ones 400', async t => {
    await expect(t, s, 'HTTP/1.1', req(`GET ${g} HTTP/1.1`), { status: 200 })
    await expect(t, s, 'HTTP/1.0 with Host', req(`GET ${g} HTTP/1.0`), { status: 200, closed: true })
    await expect(t, s, 'HTTP/1.0 without Host', `GET ${g} HTTP/1.0\r\n\r\n`, { status: 200, closed: true })
    // RFC 9110 §2.5 would read 1.2 as 1.1; Node's parser cannot, so it is refused as a version (lib/http/http-conformance.ts)
    for (const v of ['HTTP/1.2', 'HTTP/1.9', 'HTTP/2.0', 'HTTP/3.0', 'HTTP/9.9']) {
      await expect(t, s, v, req(`GET ${g} ${v}`), { status: 505, code: 'CDN_ERR_HTTP_VERSION', closed: true })
    }
    await expect(t, s, 'HTTP/0.9 (no version)', `GET ${g}\r\n\r\n`, { status: 505, code: 'CDN_ERR_HTTP_VERSION', closed: true })
    await expect(t, s, 'the HTTP/2 connection preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', { status: 505, code: 'CDN_ERR_HTTP_VERSION', closed: true })
    for (const v of ['HTTP/1.1x', 'HTTP/1.1.1', 'HTTP/1', 'HTTP/10.1', 'http/1.1']) {
      await expect(t, s, `${v} (HTTP/DIGIT.DIGIT)`, req(`GET ${g} ${v}`), { status: 400, code: 'CDN_ERR_HTTP_VERSION', closed: true })
    }
    await expect(t, s, 'HTCPCP/1.0', req(`GET ${g} HTCPCP/1.0`), { status: 400, code: 'CDN_ERR_REQUEST_LINE', closed: true })
    await stillServes(t, s, 'versions')
  })

  await t.test('request-target forms: origin and absolute are served, * is for OPTIONS, authority for CONNECT', async t => {
    await expect(t, s, 'origin-form with a query', req(`GET ${g}?x=1&y=%20 HTTP/1.1`), { status: 200 })
    await expect(t, s, 'absolute-form, its Host matching', req(`GET http://${host}${g} HTTP/1.1`, `host: ${host}\r\n`), { status: 200 })
    await expect(t, s, 'absolute-form, another Host (ignored)', req(`GET http://${host}${g} HTTP/1.1`, 'host: elsewhere.example\r\n'), { status: 200 })
    await expect(t, s, 'absolute-form with a query', req(`GET http://${host}${g}?x=1 HTTP/1.1`), { status: 200 })
    // no path is "/" (RFC 9112 §3.2.2): whatever the surface answers for "/" (a status console on the services, issue 18; a 404 elsewhere)
    const root = (await answers(s, req('GET / HTTP/1.1')))[0]!
    await expect(t, s, 'absolute-form, no path: /', req(`GET http://${host} HTTP/1.1`),
      root.status === 404 ? { status: 404, code: 'CDN_ERR_NOT_FOUND' } : { status: root.status })
    for (const scheme of ['https', 'ftp']) {
      await expect(t, s, `absolute-form, ${scheme}: another origin`, req(`GET ${scheme}://${host}${g} HTTP/1.1`), { status: 421, code: 'CDN_ERR_MISDIRECTED' })
    }
    for (const [target, what] of [[`http://user@${host}${g}`, 'userinfo'], [`http://${g}`, 'no host'], [`http://:80${g}`, 'a port and no host'],
      [`${g}#frag`, 'a fragment'], ['*', 'asterisk-form on GET'], ['v1/relative', 'a relative path']] as const) {
      await expect(t, s, `${what} (${target})`, req(`GET ${target} HTTP/1.1`), { status: 400, code: 'CDN_ERR_REQUEST_TARGET' })
    }
    await expect(t, s, 'authority-form on GET', req(`GET ${host} HTTP/1.1`), { status: 400, code: 'CDN_ERR_REQUEST_TARGET', closed: true })
    await expect(t, s, 'an empty target', req('GET  HTTP/1.1'), { status: 400, closed: true })
    await expect(t, s, 'whitespace in the target', req(`GET ${g} x HTTP/1.1`), { status: 400, closed: true })
    const [star] = await expect(t, s, 'OPTIONS *', req('OPTIONS * HTTP/1.1'), { status: 204, allow: true })
    t.match(star!.head, /\r\nallow: [^\r]*\bOPTIONS\b/i, 'OPTIONS *: the server-wide methods, OPTIONS among them')
    await stillServes(t, s, 'request-target forms')
  })

  await t.test('Host: one on HTTP/1.1, at most one on 1.0, host[:port]; anything else is 400 CDN_ERR_HOST', async t => {
    for (const [fields, what] of [['', 'no Host on 1.1'], ['host: a\r\nhost: b\r\n', 'two Hosts'], ['host: a\r\nHOST: a\r\n', 'the same Host twice'],
      ['host: a b\r\n', 'a space'], ['host: a/b\r\n', 'a slash'], ['host: u@a\r\n', 'userinfo'], ['host: a:8x\r\n', 'a port of letters'],
      ['host: a%zz\r\n', 'a broken escape'], ['host: a\tb\r\n', 'a tab'], ['host: \u00e9.example\r\n', 'a non-ASCII byte']] as const) {
      await expect(t, s, `Host: ${what}`, req(`GET ${g} HTTP/1.1`, fields), { status: 400, code: 'CDN_ERR_HOST' })
    }
    await expect(t, s, 'two Hosts on HTTP/1.0', req(`GET ${g} HTTP/1.0`, 'host: a\r\nhost: b\r\n'), { status: 400, code: 'CDN_ERR_HOST' })
    for (const [value, what] of [[host, 'the address and port'], ['cdn.example:443', 'a name and port'], ['[::1]', 'an IPv6 literal'],
      ['', 'empty (served: the service answers for any name)']] as const) {
      await expect(t, s, `Host: ${what}`, req(`GET ${g} HTTP/1.1`, `host: ${value}\r\n`), { status: 200 })
    }
    await stillServes(t, s, 'Host')
  })

  await t.test('field syntax: a token name, no space before the colon, no NUL, CR or folding: 400', async t => {
    for (const [field, what, code] of [['x-a : b', 'whitespace before the colon', 'CDN_ERR_HEADER_FIELD'], ['x(a): b', 'a ( in the name', 'CDN_ERR_HEADER_FIELD'],
      ['x@a: b', 'an @ in the name', 'CDN_ERR_HEADER_FIELD'], ['x[a]: b', 'brackets in the name', 'CDN_ERR_HEADER_FIELD'], [': v', 'an empty name', 'CDN_ERR_HEADER_FIELD'],
      ['no colon', 'no colon', 'CDN_ERR_HEADER_FIELD'], ['x-a: a\x00b', 'NUL in the value', 'CDN_ERR_HEADER_FIELD'],
      ['x-a: a\rb', 'a bare CR', 'CDN_ERR_LINE_ENDING'], ['x-a: a\r\n  folded', 'obs-fold', 'CDN_ERR_HEADER_FIELD']] as const) {
      await expect(t, s, what, req(`GET ${g} HTTP/1.1`, `host: t\r\n${field}\r\n`), { status: 400, closed: true, code })
    }
    await stillServes(t, s, 'field syntax')
  })

  await t.test('framing: chunked last and alone, never with Content-Length, not on 1.0; one Content-Length', async t => {
    const post = (v: string, fields: string, body = '') => `POST ${g} ${v}\r\nhost: t\r\n${fields}\r\n${body}`
    await expect(t, s, 'Content-Length and Transfer-Encoding', post('HTTP/1.1', 'content-length: 4\r\ntransfer-encoding: chunked\r\n', '0\r\n\r\n'),
      { status: 400, code: 'CDN_ERR_FRAMING', closed: true })
    await expect(t, s, 'two Content-Lengths', post('HTTP/1.1', 'content-length: 1\r\ncontent-length: 2\r\n', 'ab'), { status: 400, code: 'CDN_ERR_FRAMING', closed: true })
    await expect(t, s, 'the same Content-Length twice', post('HTTP/1.1', 'content-length: 2\r\ncontent-length: 2\r\n', 'ab'), { status: 400, code: 'CDN_ERR_FRAMING', closed: true })
    await expect(t, s, 'a Transfer-Encoding not ending in chunked', post('HTTP/1.1', 'transfer-encoding: gzip\r\n', 'abc'), { status: 400, code: 'CDN_ERR_FRAMING', closed: true })
    await expect(t, s, 'chunked twice', post('HTTP/1.1', 'transfer-encoding: chunked, chunked\r\n', '0\r\n\r\n'), { status: 400, code: 'CDN_ERR_FRAMING', closed: true })
    await expect(t, s, 'another coding before chunked', post('HTTP/1.1', 'transfer-encoding: gzip, chunked\r\n', '0\r\n\r\n'),
      { status: 501, code: 'CDN_ERR_TRANSFER_CODING', closed: true })
    await expect(t, s, 'Transfer-Encoding on HTTP/1.0', post('HTTP/1.0', 'transfer-encoding: chunked\r\n', '0\r\n\r\n'), { status: 400, code: 'CDN_ERR_FRAMING', closed: true })
    await stillServes(t, s, 'framing')
  })

  await t.test('a bad request pipelined after good ones is answered after them, in order, then the connection closed', async t => {
    for (const [bad, status, what] of [[`get ${g} HTTP/1.1\r\nhost: t\r\n\r\n`, 501, 'a lowercase method'],
      [`GET ${g} HTTP/1.1\r\nhost: t\r\nx-a: a\x00b\r\n\r\n`, 400, 'NUL in a field'], [`GET ${g} HTTP/2.0\r\nhost: t\r\n\r\n`, 505, 'HTTP/2.0'],
      [`GET ${g} HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n`, 400, 'two Hosts']] as const) {
      for (const r of await answers(s, `GET ${g} HTTP/1.1\r\nhost: t\r\n\r\n`.repeat(2) + bad)) {
        const statuses = [...`${r.head}\r\n\r\n${r.body}`.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map(m => Number(m[1]))
        t.same(statuses, [200, 200, status], `two GETs, then ${what}: 200, 200, ${status}`)
        t.ok(r.closed, `${what}: then closed`)
      }
    }
    await stillServes(t, s, 'pipelining')
  })

  await t.test('Expect: 100-continue gets a 100 and then the answer; any other expectation 417; Upgrade is ignored', async t => {
    const c = await continued(s.base, `GET ${g} HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`)
    t.match(c, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, '100-continue: 100, then 200')
    await expect(t, s, 'Expect: something else', req(`GET ${g} HTTP/1.1`, 'host: t\r\nexpect: teapot\r\n'), { status: 417, code: 'CDN_ERR_EXPECTATION', closed: true })
    await expect(t, s, 'Upgrade: websocket', req(`GET ${g} HTTP/1.1`, 'host: t\r\nconnection: upgrade\r\nupgrade: websocket\r\n'), { status: 200 })
    await expect(t, s, 'Upgrade: h2c', req(`GET ${g} HTTP/1.1`, 'host: t\r\nconnection: upgrade, http2-settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n'),
      { status: 200 })
    await stillServes(t, s, 'expectations')
  })
}

/** Sends a request with Expect: 100-continue; what came back once the connection closed (or 2 s passed). */
function continued(base: string, head: string): Promise<string> {
  const { hostname, port } = new URL(base)
  return new Promise(resolve => {
    const c = net.connect(Number(port), hostname, () => c.write(head))
    let buf = ''
    const done = () => { clearTimeout(timer); c.destroy(); resolve(buf) }
    const timer = setTimeout(done, 2000)
    c.on('data', d => { buf += d.toString('latin1') })
    c.on('close', done)
    c.on('error', done)
  })
}
