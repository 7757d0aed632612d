import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { checkRequest, parseErrorAnswer, reasonOf } from './http-conformance.js'

/**
 * The rules of lib/http-conformance.ts on requests as Node hands them over
 * (the battery in test/helpers/hostile-http.ts checks them on live servers).
 */
const limits = { maxUrlBytes: 8192, maxHeaders: 100 } as never

function request(method: string, url: string, fields: [string, string][], version = '1.1', encrypted = false): IncomingMessage {
  const [major, minor] = version.split('.').map(Number)
  const headers: Record<string, string> = {}
  for (const [k, v] of fields) headers[k.toLowerCase()] ??= v
  return { method, url, httpVersion: version, httpVersionMajor: major, httpVersionMinor: minor, rawHeaders: fields.flat(), headers,
    socket: { encrypted } } as unknown as IncomingMessage
}

const refusal = (r: IncomingMessage) => {
  const e = checkRequest(r, limits)
  return e && { status: e.statusCode, code: e.code }
}

t.test('an absolute-form target is taken as origin-form, its Host field ignored', async t => {
  for (const [target, path] of [['http://a.example:8080/v1/x?y=1', '/v1/x?y=1'], ['HTTP://A/v1/x', '/v1/x'], ['http://a', '/'], ['http://a?q', '/?q']]) {
    const r = request('GET', target, [['Host', 'elsewhere']])
    t.equal(refusal(r), undefined, `${target}: accepted`)
    t.equal(r.url, path, `${target}: ${path}`)
  }
  t.same(refusal(request('GET', 'https://a/x', [['Host', 'a']])), { status: 421, code: 'CDN_ERR_MISDIRECTED' }, 'https on plain HTTP: 421')
  t.equal(refusal(request('GET', 'https://a/x', [['Host', 'a']], '1.1', true)), undefined, 'https over TLS: accepted')
  for (const target of ['http://u@a/x', 'http:///x', 'http://:80/x', 'http://a b/x', '/x#f', 'x', '*']) {
    t.same(refusal(request('GET', target, [['Host', 'a']])), { status: 400, code: 'CDN_ERR_REQUEST_TARGET' }, `${target}: 400`)
  }
  t.equal(refusal(request('OPTIONS', '*', [['Host', 'a']])), undefined, 'OPTIONS *: accepted')
})

t.test('Host: one on 1.1, at most one on 1.0, host[:port]', async t => {
  const host = { status: 400, code: 'CDN_ERR_HOST' }
  t.same(refusal(request('GET', '/', [])), host, 'none on 1.1')
  t.equal(refusal(request('GET', '/', [], '1.0')), undefined, 'none on 1.0')
  t.same(refusal(request('GET', '/', [['Host', 'a'], ['host', 'a']])), host, 'twice, in any case')
  t.same(refusal(request('GET', '/', [['Host', 'a'], ['Host', 'b']], '1.0')), host, 'two on 1.0')
  for (const v of ['a b', 'a/b', 'u@a', 'a:8x', 'a%zz', 'a\tb', '\u00e9', '[::1']) t.same(refusal(request('GET', '/', [['Host', v]])), host, JSON.stringify(v))
  for (const v of ['a', 'a.example:80', '127.0.0.1:7000', '[::1]:80', '[v1.x]', '', 'a%41', 'a:']) t.equal(refusal(request('GET', '/', [['Host', v]])), undefined, JSON.stringify(v))
})

t.test('methods, versions and transfer codings', async t => {
  t.same(refusal(request('PROPFIND', '/', [['Host', 'a']])), { status: 501, code: 'CDN_ERR_UNKNOWN_METHOD' })
  for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH']) t.equal(refusal(request(m, '/', [['Host', 'a']])), undefined, `${m}: to the route`)
  t.same(refusal(request('GET', '/', [['Host', 'a']], '2.0')), { status: 505, code: 'CDN_ERR_HTTP_VERSION' })
  t.same(refusal(request('GET', '/', [], '0.9')), { status: 505, code: 'CDN_ERR_HTTP_VERSION' })
  const te = (v: string, version = '1.1') => refusal(request('POST', '/', [['Host', 'a'], ['Transfer-Encoding', v]], version))
  t.equal(te('chunked'), undefined)
  t.equal(te('Chunked ; x=1'), undefined, 'codings are case-insensitive, parameters ignored')
  t.same(te('gzip'), { status: 400, code: 'CDN_ERR_FRAMING' }, 'not ending in chunked')
  t.same(te('chunked, chunked'), { status: 400, code: 'CDN_ERR_FRAMING' })
  t.same(te('gzip, chunked'), { status: 501, code: 'CDN_ERR_TRANSFER_CODING' })
  t.same(te('chunked', '1.0'), { status: 400, code: 'CDN_ERR_FRAMING' }, 'on HTTP/1.0')
})

t.test("the parser's refusals name the rule, from the line the parser stopped in", async t => {
  const parse = (code: string, packet: string, at = packet.length) => {
    const a = parseErrorAnswer(Object.assign(new Error('Parse Error'), { code, rawPacket: Buffer.from(packet, 'latin1'), bytesParsed: at }))
    return { status: a.status, code: a.code }
  }
  t.same(parse('HPE_INVALID_METHOD', 'get / HTTP/1.1\r\n', 1), { status: 501, code: 'CDN_ERR_UNKNOWN_METHOD' })
  t.same(parse('HPE_INVALID_METHOD', 'GE(T / HTTP/1.1\r\n', 3), { status: 400, code: 'CDN_ERR_REQUEST_LINE' })
  const pipelined = 'GET / HTTP/1.1\r\nhost: a\r\n\r\nGE(T / HTTP/1.1\r\n'
  t.same(parse('HPE_INVALID_METHOD', pipelined, pipelined.indexOf('(')), { status: 400, code: 'CDN_ERR_REQUEST_LINE' }, 'the failed line, not the first of the packet')
  for (const [v, status] of [['HTTP/1.2', 505], ['HTTP/3.0', 505], ['HTTP/1.1x', 400], ['HTTP/10.1', 400], ['http/1.1', 400]] as const) {
    t.same(parse('HPE_INVALID_VERSION', `GET / ${v}\r\n`, 10), { status, code: 'CDN_ERR_HTTP_VERSION' }, v)
  }
  t.same(parse('HPE_INVALID_CONSTANT', 'GET / x HTTP/1.1\r\n', 7), { status: 400, code: 'CDN_ERR_REQUEST_LINE' }, 'whitespace in the target: not a version error')
  t.same(parse('HPE_PAUSED_H2_UPGRADE', 'PRI * HTTP/2.0\r\n'), { status: 505, code: 'CDN_ERR_HTTP_VERSION' })
  t.same(parse('HPE_UNEXPECTED_CONTENT_LENGTH', ''), { status: 400, code: 'CDN_ERR_FRAMING' })
  t.same(parse('HPE_HEADER_OVERFLOW', ''), { status: 431, code: 'CDN_ERR_REQUEST_TOO_LARGE' })
  t.same(parse('HPE_SOMETHING_NEW', ''), { status: 400, code: 'CDN_ERR_BAD_REQUEST' })
  t.equal(reasonOf('CDN_ERR_HTTP_VERSION'), 'http_version')
  t.equal(reasonOf('SOMETHING'), 'other')
})
