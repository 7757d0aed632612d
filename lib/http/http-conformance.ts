import http, { type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Config } from '../config/config.js'
import { CdnError } from '../errors.js'

/**
 * The request-line and header-field rules of HTTP/1.1 (RFC 9112 §2-3 and §6,
 * RFC 9110 §7.2 and §9) that Node's parser leaves to the server, and the
 * answers to what the parser refuses itself. One place, used by every
 * listener that faces clients: HttpService (shard, router, edge) and the
 * edge's serve threads.
 *
 * Who checks what, in order:
 * 1. llhttp, before any handler: the request-line's syntax (a method it
 *    knows, a target without whitespace, `HTTP/x.y` with x.y one of 0.9, 1.0,
 *    1.1, 2.0), field syntax (a token name, no whitespace before the colon,
 *    no NUL, bare CR or obs-fold), and framing (Content-Length with
 *    Transfer-Encoding, two Content-Lengths, chunk syntax). What it refuses
 *    reaches the server's 'clientError': `parseErrorAnswer` picks the status
 *    and names the rule.
 * 2. CONNECT never reaches a handler (Node hands its socket to a 'connect'
 *    listener, or destroys it): `refuseConnect` answers 405.
 * 3. `checkRequest`, first thing in a handler: the version (0.9 and 2.0 get
 *    505), the limits (414, 431), the method (a token outside KNOWN_METHODS,
 *    which are RFC 9110's and PATCH: 501; a known one passes, and a route
 *    that does not take it answers 405 with Allow, lib/http.ts), the Host
 *    field (exactly one on HTTP/1.1, at most one on 1.0, `uri-host [":"
 *    port]`: else 400), the target's form (origin-form; absolute-form,
 *    rewritten to origin-form, its authority standing for Host; `*` for
 *    OPTIONS only) and the transfer coding (chunked, last, not on HTTP/1.0).
 *
 * Choices where the RFCs leave one (docs/security.md lists them): an
 * unrecognized method is 501 and a defined one a resource does not take 405
 * with Allow (RFC 9110 §15.5.6 and §15.6.2), so CONNECT, TRACE and PATCH are
 * 405, though §9.1 says a server SHOULD answer 501 to a method it implements
 * on no resource: 405 with Allow tells the client what it can do instead; HTTP/1.2 and later 1.x,
 * which RFC 9110 §2.5 says SHOULD be read as 1.1, are 505 because Node's
 * parser cannot read them; an absolute-form target with another scheme than
 * the connection's is 421 and any authority is accepted (as any Host is: a
 * service answers for every name that reaches it); an empty Host is accepted.
 */

/** The methods RFC 9110 §9 defines, and PATCH (RFC 5789): a resource that does not take one answers 405 with Allow. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'])

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** `uri-host [":" port]` (RFC 3986 §3.2.2): an IP literal in brackets, or a reg-name (IPv4 addresses are reg-names too) */
const HOST = /^(?:\[[0-9A-Za-z:._~!$&'()*+,;=-]+\]|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?$/
/** absolute-URI with an authority: scheme "://" authority path-abempty [ "?" query ], no fragment */
const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)$/

export interface Answer {
  status: number
  code: string
  message: string
}

const refusal = (a: Answer) => new CdnError(a.message, { code: a.code, statusCode: a.status, source: 'client' })
const quote = (s: string) => JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}...` : s)

/**
 * What a handler refuses before routing, or undefined. An absolute-form
 * target is rewritten to origin-form in `req.url`, so that routes, logs and a
 * serve thread's relay see the path alone.
 */
export function checkRequest(req: IncomingMessage, h: Config['http']): CdnError | undefined {
  if (req.httpVersionMajor !== 1) return refusal(versionAnswer(`HTTP/${req.httpVersion}`))
  const url = req.url ?? ''
  if (url.length > h.maxUrlBytes) {
    return new CdnError(`request target longer than ${h.maxUrlBytes} bytes`, { code: 'CDN_ERR_REQUEST_TOO_LARGE', statusCode: 414, source: 'client' })
  }
  if (req.rawHeaders.length > 2 * h.maxHeaders) {
    return new CdnError(`more than ${h.maxHeaders} header fields`, { code: 'CDN_ERR_REQUEST_TOO_LARGE', statusCode: 431, source: 'client' })
  }
  const method = req.method ?? ''
  if (!KNOWN_METHODS.has(method)) return refusal(unknownMethod(method))
  return hostError(req) ?? targetError(req, url) ?? framingError(req)
}

/** RFC 9112 §3.2: one Host field on HTTP/1.1 (at most one on 1.0), whose value is `uri-host [":" port]`. */
function hostError(req: IncomingMessage): CdnError | undefined {
  const raw = req.rawHeaders
  let n = 0
  let value = ''
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!
    if (k.length === 4 && k.toLowerCase() === 'host') { n++; value = raw[i + 1]! }
  }
  const bad = (message: string) => refusal({ status: 400, code: 'CDN_ERR_HOST', message })
  if (n > 1) return bad(`${n} Host fields: a request carries one (RFC 9112 §3.2)`)
  if (n === 0) return req.httpVersionMinor >= 1 ? bad('no Host field: an HTTP/1.1 request carries one (RFC 9112 §3.2)') : undefined
  if (!HOST.test(value)) return bad(`Host ${quote(value)} is not host[:port] (RFC 9110 §7.2)`)
  return undefined
}

/** RFC 9112 §3.2: origin-form, absolute-form (taken as origin-form), `*` for OPTIONS; authority-form is CONNECT's, refused before. */
function targetError(req: IncomingMessage, url: string): CdnError | undefined {
  const bad = (message: string) => refusal({ status: 400, code: 'CDN_ERR_REQUEST_TARGET', message })
  if (url.includes('#')) return bad('a fragment (#...) is not part of a request-target (RFC 9112 §3.2)')
  if (url.charCodeAt(0) === 0x2f /* / */) return undefined
  if (url === '*') return req.method === 'OPTIONS' ? undefined : bad(`* is the target of OPTIONS only (RFC 9112 §3.2.4), not of ${req.method}`)
  const abs = ABSOLUTE.exec(url)
  if (abs === null) return bad(`${quote(url)} is neither origin-form (/path?query) nor absolute-form (http://host/path) (RFC 9112 §3.2)`)
  const [, scheme, authority, rest] = abs as unknown as [string, string, string, string]
  if (authority.includes('@')) return bad('userinfo (user@) in the target is not allowed (RFC 9110 §4.2.4)')
  if (!HOST.test(authority) || /^(?::|$)/.test(authority)) return bad(`the target's authority ${quote(authority)} is not host[:port] (RFC 9110 §4.2.1)`)
  const mine = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http'
  if (scheme.toLowerCase() !== mine) {
    return refusal({ status: 421, code: 'CDN_ERR_MISDIRECTED', message: `this server answers ${mine} on this connection, not ${scheme.toLowerCase()} (RFC 9110 §7.4)` })
  }
  req.url = rest === '' || rest.charCodeAt(0) === 0x3f /* ? */ ? `/${rest}` : rest
  return undefined
}

/** RFC 9112 §6.1 and §6.3: a request's Transfer-Encoding ends with chunked, which is the only coding taken, and is not on HTTP/1.0. */
function framingError(req: IncomingMessage): CdnError | undefined {
  const te = req.headers['transfer-encoding']
  if (te === undefined) return undefined
  const bad = (message: string) => refusal({ status: 400, code: 'CDN_ERR_FRAMING', message })
  if (req.httpVersionMinor === 0) return bad('Transfer-Encoding on an HTTP/1.0 request: its framing cannot be trusted (RFC 9112 §6.1)')
  const codings = te.split(',').map(c => c.split(';')[0]!.trim().toLowerCase()).filter(c => c !== '')
  if (codings[codings.length - 1] !== 'chunked') return bad('chunked must be the last transfer coding of a request (RFC 9112 §6.3)')
  const other = codings.slice(0, -1)
  if (other.includes('chunked')) return bad('chunked applied more than once (RFC 9112 §7)')
  if (other.length > 0) {
    return refusal({ status: 501, code: 'CDN_ERR_TRANSFER_CODING', message: `transfer coding ${quote(other[0]!)} is not implemented: send the body chunked or with a Content-Length (RFC 9112 §6.1)` })
  }
  return undefined
}

function unknownMethod(method: string): Answer {
  return { status: 501, code: 'CDN_ERR_UNKNOWN_METHOD',
    message: `method ${quote(method)} is not implemented: methods are case-sensitive, and this server knows ${[...KNOWN_METHODS].join(', ')} (RFC 9110 §9.1)` }
}

/** 505 for a well-formed version other than 1.0 and 1.1, 400 for one that is not `HTTP/DIGIT.DIGIT` (RFC 9112 §2.3). */
function versionAnswer(version: string): Answer {
  if (/^HTTP\/\d\.\d$/.test(version)) {
    return { status: 505, code: 'CDN_ERR_HTTP_VERSION', message: `${version} is not supported: speak HTTP/1.1 (or 1.0)` }
  }
  return { status: 400, code: 'CDN_ERR_HTTP_VERSION', message: `malformed HTTP-version ${quote(version)}: it is HTTP/<digit>.<digit>, case-sensitive (RFC 9112 §2.3)` }
}

type ParseError = NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number }

/**
 * The line the parser failed in (latin1, at most 200 characters): the packet
 * may hold earlier requests of the connection, so the line is the one around
 * where parsing stopped.
 */
function failedLine(err: ParseError): string {
  const raw = err.rawPacket
  if (raw === undefined) return ''
  const at = Math.min(err.bytesParsed ?? 0, raw.length)
  const start = at > 0 ? raw.lastIndexOf(0x0a, at - 1) + 1 : 0
  const s = raw.toString('latin1', start, Math.min(raw.length, start + 200))
  const end = s.search(/[\r\n]/)
  return end < 0 ? s : s.slice(0, end)
}

/** The answer to a request Node's parser refused ('clientError'), naming the rule it broke. */
export function parseErrorAnswer(err: ParseError): Answer {
  const code = err.code ?? ''
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'CDN_ERR_REQUEST_TOO_LARGE', message: 'the request head is larger than http.maxHeaderBytes' }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'CDN_ERR_TIMEOUT', message: 'the request did not arrive within the header or request timeout' }
    case 'HPE_INVALID_METHOD': {
      const method = failedLine(err).split(/[ \t]/)[0]!
      if (TOKEN.test(method)) return unknownMethod(method)
      return { status: 400, code: 'CDN_ERR_REQUEST_LINE', message: 'malformed request-line: it is method SP request-target SP HTTP-version (RFC 9112 §3)' }
    }
    case 'HPE_INVALID_VERSION':
    case 'HPE_INVALID_CONSTANT': {
      // a version the parser does not take, in a request-line otherwise whole: 505 or 400 by its form
      const parts = failedLine(err).split(' ')
      const version = parts[2] ?? ''
      if (parts.length === 3 && /^HTTP\//i.test(version) && version !== 'HTTP/1.1' && version !== 'HTTP/1.0') return versionAnswer(version)
      return { status: 400, code: 'CDN_ERR_REQUEST_LINE', message: `malformed request-line (${code}): it is method SP request-target SP HTTP-version (RFC 9112 §3)` }
    }
    case 'HPE_PAUSED_H2_UPGRADE':
      return { status: 505, code: 'CDN_ERR_HTTP_VERSION', message: 'an HTTP/2 connection preface: this server speaks HTTP/1.1 (no prior-knowledge HTTP/2)' }
    case 'HPE_INVALID_URL':
      return { status: 400, code: 'CDN_ERR_REQUEST_TARGET', message: 'malformed request-target: origin-form (/path?query) or absolute-form (http://host/path) (RFC 9112 §3.2)' }
    case 'HPE_LF_EXPECTED':
    case 'HPE_CR_EXPECTED':
      return { status: 400, code: 'CDN_ERR_LINE_ENDING', message: 'a line ends with CRLF: a bare CR, or a bare LF, is refused (RFC 9112 §2.2)' }
    case 'HPE_INVALID_HEADER_TOKEN':
      return { status: 400, code: 'CDN_ERR_HEADER_FIELD',
        message: 'malformed header field: a token name, no whitespace before the colon, no NUL, CR or line folding in the value (RFC 9112 §5)' }
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CHUNK_SIZE':
      return { status: 400, code: 'CDN_ERR_FRAMING', message: `ambiguous or malformed message framing (${code}): one Content-Length, or Transfer-Encoding ending in chunked, never both (RFC 9112 §6)` }
    default:
      return { status: 400, code: 'CDN_ERR_BAD_REQUEST', message: `malformed request: ${code || err.message}` }
  }
}

/** A low-cardinality label for a refusal: its code without the prefix (`CDN_ERR_HOST` is `host`). */
export function reasonOf(code: string): string {
  return (code.startsWith('CDN_ERR_') ? code.slice(8) : 'other').toLowerCase()
}

export interface GuardOptions {
  /** the methods the server takes on some resource: the Allow of its answer to CONNECT */
  allow: () => string
  /** counts a request refused here, by reason (`reasonOf`) */
  refused: (reason: string) => void
}

/**
 * Connection limits, and the answers no handler gives: to requests Node's
 * parser refuses, to CONNECT, and to an expectation other than 100-continue.
 * For any listener that faces clients.
 */
export function guardServer(server: http.Server, h: Config['http'], o: GuardOptions): void {
  // counted by us so an excess is a 431, where Node would silently drop the extra fields
  server.maxHeadersCount = 0
  server.maxConnections = h.maxConnections
  server.on('clientError', (err: ParseError, socket: Socket) => {
    // a socket error (the client reset it, a write failed): nobody to answer
    if (!socket.writable || !(err.code?.startsWith('HPE_') || err.code === 'ERR_HTTP_REQUEST_TIMEOUT')) return void socket.destroy()
    const current = (socket as SocketWithAnswer)._httpMessage
    // the request whose body failed to parse was refused already (checkRequest) and its answer is out: nothing more to say
    if (current && !current.req.complete && current.headersSent) return void socket.destroySoon()
    const a = parseErrorAnswer(err)
    o.refused(reasonOf(a.code))
    // a bad request pipelined after good ones: theirs go out first, in order, then ours (in their place it would answer them)
    if (current && current.req.complete) return afterAnswers(socket, () => answerOnSocket(socket, a))
    answerOnSocket(socket, a)
  })
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => {})
    o.refused('method')
    answerOnSocket(socket, { status: 405, code: 'CDN_ERR_METHOD',
      message: 'method CONNECT not allowed: this server is not a proxy and opens no tunnels (RFC 9110 §9.3.6)' }, { allow: o.allow() })
  })
  server.on('checkExpectation', (_req: IncomingMessage, res: http.ServerResponse) => {
    o.refused('expectation')
    const body = JSON.stringify({ error: { code: 'CDN_ERR_EXPECTATION', message: 'the only expectation this server meets is 100-continue (RFC 9110 §10.1.1)' } })
    res.shouldKeepAlive = false
    res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body)
  })
}

type SocketWithAnswer = Socket & { _httpMessage?: http.ServerResponse | null }

/** Runs `fn` once no answer is in flight on the socket (Node's own 'finish' handler first hands it the next queued one, if any). */
function afterAnswers(socket: Socket, fn: () => void): void {
  const res = (socket as SocketWithAnswer)._httpMessage
  if (res === null || res === undefined) return socket.writable ? fn() : void socket.destroy()
  res.once('finish', () => setImmediate(() => afterAnswers(socket, fn)))
}

/** Writes a whole JSON error answer on a socket Node's HTTP layer has let go of (or never will answer on), and closes it. */
function answerOnSocket(socket: Socket, a: Answer, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: { code: a.code, message: a.message } })
  let head = `HTTP/1.1 ${a.status} ${http.STATUS_CODES[a.status]}\r\n`
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`
  socket.end(`${head}content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  // the server socket allows half-open connections: without this a client that keeps writing keeps it open
  socket.destroySoon()
}
