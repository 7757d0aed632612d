import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import net, { type AddressInfo, type Socket } from 'node:net'
import { randomBytes, X509Certificate } from 'node:crypto'
import type { Registry } from 'prom-client'
import type { Logger } from '../logger.js'
import type { Config } from '../config/config.js'
import { BadRequestError, CdnError, ClientClosedError, ConfigError, MethodNotAllowedError, NotConfiguredError, NotFoundError, PayloadTooLargeError, toCdnError } from '../errors.js'
import { httpMetrics, tlsMetrics, type HttpMetrics } from '../metrics.js'
import { tokensEqual } from '../security/auth.js'
import { checkRequest, guardServer, KNOWN_METHODS, reasonOf } from './http-conformance.js'

export { checkRequest, guardServer }

/**
 * The HTTP shell every service shares: routing, request ids, errors as JSON,
 * /healthz, /readyz, /metrics, and a graceful close. Handlers choose the status
 * before the first header; after it, a failure can only destroy the socket,
 * which is what `sendError` does when headers are out.
 */
export interface Match {
  params: string[]
  query: string
  route: string
  id: string
}
export type Handler = (req: IncomingMessage, res: ServerResponse, m: Match) => unknown

export interface Route {
  /** e.g. `/v1/chunks/:id/:index`; `:x` matches one non-empty segment */
  path: string
  methods: Record<string, Handler>
}

interface Compiled {
  name: string
  /** `{ route: name }`, built once: the per-request metrics reuse it */
  labels: { route: string }
  segments: (string | null)[]
  methods: Record<string, Handler>
  allow: string[]
}

export interface ServiceOptions {
  name: string
  http: Config['http']
  logRequests: boolean
  logger: Logger
  registry: Registry
  routes: Route[]
  /** false while starting or draining: /readyz answers 503 */
  ready: () => boolean
}

const bootId = randomBytes(4).toString('hex')
let seq = 0
const UNMATCHED = { route: 'unmatched' }
const SERVER_WIDE = { route: '*' }
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** The options every service's listener uses (timeouts, header size, no Nagle). */
export function httpServerOptions(h: Config['http']): http.ServerOptions {
  return {
    headersTimeout: h.headersTimeoutMs,
    requestTimeout: h.requestTimeoutMs,
    keepAliveTimeout: h.keepAliveTimeoutMs,
    maxHeaderSize: h.maxHeaderBytes,
    // how often Node checks the header and request timeouts (its default, 30 s, would let a slowloris linger)
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(h.headersTimeoutMs / 4))),
    noDelay: true,
    // checkRequest answers a missing Host with the JSON error every other refusal has (Node's own 400 has no body)
    requireHostHeader: false,
  }
}

/** The request's id: the client's `x-request-id` if it is sane, else a new one (unique per process and thread). */
export function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : `${bootId}-${(++seq).toString(36)}`
}

const PEER = Symbol('peer')

/**
 * The client's address. A request relayed by one of the edge's serve threads
 * (HttpService.listenRelay) comes from the thread, over a local socket, and
 * carries its client's address with it.
 */
export function peerAddress(req: IncomingMessage): string | undefined {
  return (req as IncomingMessage & { [PEER]?: string })[PEER] ?? req.socket.remoteAddress
}

const PEER_LEFT = Symbol('peerLeft')
type Watched = import('node:net').Socket & { [PEER_LEFT]?: boolean }
/** what a socket's own read or write fails with when its peer has reset or left it */
const PEER_ERRNOS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

/**
 * Notes on a connection (once) when its peer ends or resets it: the one
 * sign that the client went away which our own code cannot give. A handler
 * that reads a body with `for await` and throws (a disk write failing, say)
 * destroys the request itself on the way out, and a pipeline that fails
 * destroys the response; both look like a client gone to `req.destroyed`,
 * `res.destroyed` or a 'close', and would hide a server fault as a 499.
 */
function watchPeer(socket: Watched): void {
  if (socket[PEER_LEFT] !== undefined) return
  socket[PEER_LEFT] = false
  const left = () => { socket[PEER_LEFT] = true }
  socket.once('end', left)
  socket.on('error', (e: NodeJS.ErrnoException) => { if (PEER_ERRNOS.has(e.code ?? '')) left() })
}

/**
 * Whether the client went away: its connection was ended or reset by its
 * side, or Node aborted the request because the connection closed before the
 * body ended (`req.errored` is then its ECONNRESET 'aborted'; a request we
 * destroyed ourselves carries no error, or an AbortError).
 */
function clientLeft(req: IncomingMessage, socket: Watched): boolean {
  return socket[PEER_LEFT] === true || (req.errored as NodeJS.ErrnoException | null)?.code === 'ECONNRESET'
}

/** Headers a serve thread adds to a relayed request: the shared secret and the client's address. */
export const RELAY_SECRET_HEADER = 'x-reelcdn-relay'
export const RELAY_PEER_HEADER = 'x-reelcdn-peer'

export class HttpService {
  readonly server: http.Server
  readonly metrics: HttpMetrics
  private readonly routes: Compiled[]
  /** the methods some route takes: what `OPTIONS *` and the answer to CONNECT list in Allow */
  readonly allowed: string
  private inflight = 0
  /** handlers still running: one whose client left has no response open, but may still be writing files */
  private handling = 0
  private draining = false
  private readonly open = new Set<Socket>()
  private relay: http.Server | undefined
  /** requests other threads are answering themselves now (the edge's serve threads): in the in-flight gauge with ours */
  elsewhere: (() => number) | undefined
  /** called for every connection either listener accepts (the edge's send queue keeps the turn after it short: edge/serve/slices.ts) */
  accepted: (() => void) | undefined
  /** the served certificate's notAfter (ms), what reelcdn_tls_certificate_expiry_timestamp_seconds shows: whatever swaps the certificate sets it too */
  certNotAfterMs = 0

  constructor(private readonly opts: ServiceOptions) {
    this.metrics = httpMetrics(opts.registry, () => this.inflight + (this.elsewhere?.() ?? 0))
    this.routes = [...opts.routes, ...this.builtins()].map(compile)
    this.allowed = [...KNOWN_METHODS].filter(m => this.routes.some(r => r.allow.includes(m))).join(', ')
    const h = opts.http
    const handler = (req: IncomingMessage, res: ServerResponse) => { void this.handleCounted(req, res) }
    const tls = h.tlsCertFile ? readTls(h.tlsCertFile, h.tlsKeyFile) : undefined
    this.server = tls
      ? https.createServer({ ...httpServerOptions(h), ...tls }, handler)
      : http.createServer(httpServerOptions(h), handler)
    if (tls) {
      this.certNotAfterMs = certificateExpiry(tls.cert, h.tlsCertFile)
      tlsMetrics(opts.registry, () => this.certNotAfterMs)
    }
    guardServer(this.server, h, { allow: () => this.allowed, refused: reason => this.refusedClient(reason) })
    // open client connections, for an upgrade's drain (close({ handover }))
    this.server.on('connection', (s: Socket) => { this.open.add(s); s.once('close', () => this.open.delete(s)); this.accepted?.() })
  }

  /** Counts a request refused, or cut, for a cause on the client's side. */
  refusedClient(reason: string): void {
    this.metrics.clientErrors.inc({ reason })
  }

  private builtins(): Route[] {
    return [
      { path: '/healthz', methods: { GET: (_q, res) => sendJson(res, 200, { status: 'alive' }) } },
      {
        path: '/readyz', methods: {
          GET: (_q, res) => {
            const ok = !this.draining && this.opts.ready()
            sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : this.draining ? 'draining' : 'starting' })
          },
        },
      },
      {
        path: '/metrics', methods: {
          GET: async (_q, res) => {
            const text = await this.opts.registry.metrics()
            res.writeHead(200, { 'content-type': this.opts.registry.contentType, 'content-length': Buffer.byteLength(text) })
            res.end(text)
          },
        },
      },
    ]
  }

  /** `handle`, counted until it returns: close() waits for handlers, not only for responses. */
  private async handleCounted(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.handling++
    try {
      await this.handle(req, res)
    } finally {
      this.handling--
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const start = performance.now()
    // req.socket is gone once the response is done: held here for clientLeft
    const socket = req.socket as Watched
    watchPeer(socket)
    const id = requestId(req)
    res.setHeader('x-request-id', id)
    // with every request logged, the client's address now (one getpeername per connection), before a client that leaves takes it along
    const remote = this.opts.logRequests ? peerAddress(req) : undefined
    // a relayed request was checked by the serve thread, as its client sent it
    const refused = (req as IncomingMessage & { [PEER]?: string })[PEER] === undefined ? checkRequest(req, this.opts.http) : undefined
    if (refused !== undefined) {
      res.shouldKeepAlive = false
      this.refusedClient(reasonOf(refused.code))
      return sendError(res, refused, this.opts.logger, id)
    }
    // after checkRequest, which rewrites an absolute-form target to origin-form
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    const query = q < 0 ? '' : url.slice(q + 1)
    let routeName = 'unmatched'
    let routeLabels = UNMATCHED
    /** a handler's failure: logged in the request's one line, not a line of its own */
    let failure: CdnError | undefined
    let closed = false
    this.inflight++
    // 'close' comes once per response: `on` spares the once-wrapper
    res.on('close', () => {
      closed = true
      this.inflight--
      const status = res.statusCode
      const secs = (performance.now() - start) / 1000
      this.account(routeName, routeLabels, req.method ?? '', status, secs, res.writableFinished)
      // a failure after the headers leaves a 2xx status and a cut body: still a server fault
      const fault = failure !== undefined && operatorMustAct(failure) ? failure : undefined
      if (this.opts.logRequests || status >= 500 || fault) {
        // remote: the client's address (a proxy's, behind one; a relayed request's own client's), for a log shipper's per-client views;
        // req.socket is null by now, the held socket may be closed (then the address is unknown, and left out)
        const line = { reqId: id, method: req.method, url: logUrl(url), status, ms: Math.round(secs * 1000), finished: res.writableFinished,
          remote: remote ?? (req as IncomingMessage & { [PEER]?: string })[PEER] ?? socket?.remoteAddress }
        if (fault) this.opts.logger.error({ ...line, err: fault, code: fault.code }, 'request')
        // the client's doing (a version or method we do not speak, an abort, a 507 of its making): no stack, no warning
        else if (failure?.source === 'client') this.opts.logger.info({ ...line, code: failure.code }, 'request')
        else this.opts.logger[status >= 500 ? 'warn' : 'info'](line, 'request')
      }
      if (this.draining) res.shouldKeepAlive = false
    })
    try {
      if (path === '*') {
        // OPTIONS * (checkRequest refused * with any other method): what the server as a whole takes
        routeName = '*'
        routeLabels = SERVER_WIDE
        res.writeHead(204, { allow: this.allowed })
        return void res.end()
      }
      const segs = path.split('/')
      let found: Compiled | undefined
      let params: string[] = []
      for (const r of this.routes) {
        const p = matchSegments(r.segments, segs)
        if (p) { found = r; params = p; break }
      }
      if (!found) throw new NotFoundError(`route ${path}`)
      routeName = found.name
      routeLabels = found.labels
      const method = req.method ?? 'GET'
      const handler = found.methods[method] ?? (method === 'HEAD' ? found.methods.GET : undefined)
      if (!handler) {
        if (method === 'OPTIONS' && found.methods.OPTIONS === undefined) {
          res.writeHead(204, { allow: found.allow.join(', ') })
          return void res.end()
        }
        throw new MethodNotAllowedError(method, found.allow)
      }
      if (this.draining) res.setHeader('connection', 'close')
      await handler(req, res, { params, query, route: found.name, id })
    } catch (err) {
      failure = toCdnError(err)
      // an unclassified failure once the client has gone (a write to its closed socket, its upload cut): the client's doing
      if (failure.code === 'CDN_ERR_INTERNAL' && clientLeft(req, socket)) {
        failure = new ClientClosedError(`the client left: ${failure.message}`, { cause: err })
      }
      if (failure.source === 'client') this.refusedClient(reasonOf(failure.code))
      // the client left before the handler failed: the request's line is written already
      if (closed && operatorMustAct(failure)) this.opts.logger.error({ reqId: id, err: failure, code: failure.code }, failure.message)
      answerError(res, failure)
    }
  }

  /** Counts an answered request in the service's metrics (also one a serve thread answered itself). */
  account(route: string, labels: { route: string }, method: string, status: number, secs: number, finished: boolean): void {
    const cls = Math.floor(status / 100)
    this.metrics.answered.get(`${route} ${method} ${cls}`, () => ({ route, method, status: `${cls}xx` })).n++
    this.metrics.duration.observe(labels, secs)
    if (!finished) this.metrics.aborted.inc(labels)
  }

  /** The metric labels of a route by its path, as the service counts it. */
  routeLabels(path: string): { route: string } {
    return this.routes.find(r => r.name === path)?.labels ?? UNMATCHED
  }

  /**
   * A second listener, on a local socket, for requests the edge's serve
   * threads relay: the same routes, and the client's address taken from the
   * relay's header when the request carries the relay's secret (else 403).
   * The request's limits are not checked again (the thread did, on what the
   * client sent). Closed by `closeRelay`, once the threads are done.
   */
  async listenRelay(path: string, secret: string): Promise<void> {
    const h = this.opts.http
    // the thread checked the request's limits as the client sent it; relayed, it carries a few more fields and bytes
    const server = http.createServer({ ...httpServerOptions(h), maxHeaderSize: h.maxHeaderBytes + 4096, requireHostHeader: false }, (req, res) => {
      const given = req.headers[RELAY_SECRET_HEADER]
      if (typeof given !== 'string' || !tokensEqual(given, secret)) {
        res.shouldKeepAlive = false
        return sendJson(res, 403, { error: { code: 'CDN_ERR_FORBIDDEN', message: 'not a relayed request' } })
      }
      const peer = req.headers[RELAY_PEER_HEADER]
      ;(req as IncomingMessage & { [PEER]?: string })[PEER] = typeof peer === 'string' ? peer : ''
      void this.handleCounted(req, res)
    })
    server.maxHeadersCount = 0
    server.on('connection', () => this.accepted?.())
    await listenOn(server, path)
    this.relay = server
  }

  /** The listening socket's descriptor (serve threads listen on it too). */
  get fd(): number {
    const fd = (this.server as unknown as { _handle?: { fd?: number } })._handle?.fd
    if (typeof fd !== 'number' || fd < 0) throw new Error('the server is not listening on a socket of its own')
    return fd
  }


  /** Requests being handled now. */
  get active(): number {
    return this.inflight
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await listenOn(this.server, port, host)
    return this.server.address() as AddressInfo
  }

  /** Listens on an inherited, bound socket (edge/run/supervisor.ts hands the same one to each worker). */
  async listenFd(fd: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen({ fd }, () => { this.server.off('error', reject); resolve() })
    })
    return this.server.address() as AddressInfo
  }

  get url(): string {
    const a = this.server.address() as AddressInfo
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
    return `${this.opts.http.tlsCertFile ? 'https' : 'http'}://${host}:${a.port}`
  }

  /**
   * Stops accepting, lets in-flight requests finish up to `shutdownGraceMs`,
   * then cuts the rest. It returns once every handler has returned too (a
   * handler whose client left may still be writing a file into the data
   * directory its owner removes next), waiting at most the grace again for
   * handlers of cut connections: their reads and writes fail at once.
   */
  async close(opts: { handover?: boolean } = {}): Promise<void> {
    if (this.draining && !this.server.listening) return
    this.draining = true
    // http.Server#close also closes the idle keep-alive connections at once (Node 19+); net.Server#close only stops accepting
    const closed = new Promise<void>(resolve => {
      if (opts.handover) net.Server.prototype.close.call(this.server, () => resolve())
      else this.server.close(() => resolve())
    })
    const grace = this.opts.http.shutdownGraceMs
    let deadline = Date.now() + grace
    if (opts.handover) {
      // an upgrade (edge/run/supervisor.ts): closing a keep-alive connection the instant its client sends on it is a
      // reset that client sees, so connections are left to end themselves: each next response says `Connection: close`
      // and the client's next connection waits in the accept queue for the new worker; one idle past the keep-alive
      // timeout is closed by that timeout, as at any other time
      const linger = Math.min(deadline, Date.now() + this.opts.http.keepAliveTimeoutMs)
      while (Date.now() < linger && this.open.size > 0) await new Promise(r => setTimeout(r, 10))
      // now http.Server's part of closing: idle connections, and its timer that checks request timeouts
      this.server.close()
    }
    this.server.closeIdleConnections()
    while ((this.inflight > 0 || this.handling > 0) && Date.now() < deadline) {
      await new Promise(r => setTimeout(r, 20))
      this.server.closeIdleConnections()
    }
    this.server.closeAllConnections()
    await closed
    deadline = Date.now() + grace
    while (this.handling > 0 && Date.now() < deadline) await new Promise(r => setTimeout(r, 20))
  }

  /** Closes the relay listener (after the threads that relay to it have drained). */
  async closeRelay(): Promise<void> {
    const relay = this.relay
    if (relay === undefined) return
    this.relay = undefined
    relay.closeAllConnections()
    await new Promise<void>(resolve => relay.close(() => resolve()))
  }
}

/** `server.listen(...args)`, resolved once listening, rejected with the error (EADDRINUSE, say) otherwise. */
function listenOn(server: http.Server, ...args: [string] | [number, string]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(...(args as [number, string]), () => { server.off('error', reject); resolve() })
  })
}

export function readTls(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  try {
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) }
  } catch (err) {
    throw new ConfigError(`cannot read the TLS certificate or key (http.tlsCertFile, http.tlsKeyFile): ${(err as Error).message}`)
  }
}

/** The serving certificate's notAfter in ms (the first certificate of the file: the leaf), for its expiry alert. */
export function certificateExpiry(cert: Buffer, file: string): number {
  try {
    return Date.parse(new X509Certificate(cert).validTo)
  } catch (err) {
    throw new ConfigError(`cannot parse the TLS certificate in ${file} (http.tlsCertFile): ${(err as Error).message}`)
  }
}

function compile(r: Route): Compiled {
  const allow = Object.keys(r.methods)
  if (allow.includes('GET') && !allow.includes('HEAD')) allow.push('HEAD')
  // every route answers OPTIONS (HttpService.handle does, when the route has no handler of its own)
  if (!allow.includes('OPTIONS')) allow.push('OPTIONS')
  // in one order everywhere (an edge's CORS preflight lists its own): RFC 9110's
  const order = [...KNOWN_METHODS]
  allow.sort((a, b) => order.indexOf(a) - order.indexOf(b))
  return { name: r.path, labels: { route: r.path }, segments: r.path.split('/').map(s => (s.startsWith(':') ? null : s)), methods: r.methods, allow }
}

function matchSegments(pattern: (string | null)[], segs: string[]): string[] | null {
  if (pattern.length !== segs.length) return null
  const params: string[] = []
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]
    if (p === null) {
      if (segs[i]!.length === 0) return null
      params.push(segs[i]!)
    } else if (p !== segs[i]) return null
  }
  return params
}

/**
 * A request target as logged: a play token, as the value of a `token` query parameter or in the path of an
 * adaptive title's files (`/v1/content/{id}/t/{token}/…`, docs/abr.md), and a viewer credential (`viewer`,
 * /v1/play's, valid for a year) are replaced, as the logger's redact list replaces credentials in headers.
 */
export function logUrl(url: string): string {
  if (url.includes('/t/')) url = url.replace(/^(\/v1\/content\/[^/?#]+\/t\/)[^/?#]+/, '$1[redacted]')
  return url.includes('token=') || url.includes('viewer=') ? url.replace(/([?&](?:token|viewer)=)[^&#]*/g, '$1[redacted]') : url
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}

/**
 * Whether a failure is for an operator to act on, and so logged at level 50
 * with its stack: one on our side (server, storage, upstream, config) that
 * failed the request. A client's mistake, abort or missing credential, or a
 * 5xx of its making (505, 501, a 507 its uploads caused), is not: that is
 * logged at info without a stack and counted in
 * reelcdn_http_client_errors_total. Nor is a route of a feature the service
 * was started without (NotConfiguredError): it said so once at start, and a
 * line per request is a flood any client could cause (a warning each).
 */
export function operatorMustAct(e: CdnError): boolean {
  return e.source !== 'client' && !(e instanceof NotConfiguredError) && e.statusCode >= 500
}

/** Answers an error as JSON, or, once headers are out, cuts the connection so the client sees a short body. */
export function sendError(res: ServerResponse, err: unknown, logger: Logger, reqId: string): void {
  const e = toCdnError(err)
  if (operatorMustAct(e)) logger.error({ reqId, err: e, code: e.code }, e.message)
  else if (e.statusCode >= 500) logger.info({ reqId, method: res.req.method, url: logUrl(res.req.url ?? ''), status: e.statusCode, code: e.code }, e.message)
  answerError(res, e)
}

/** sendError without the log line, for callers that log the request themselves. */
function answerError(res: ServerResponse, e: CdnError): void {
  if (res.headersSent) {
    res.destroy(e)
    return
  }
  const req = res.req
  // An unread request body would be parsed as the next request: close instead of draining it.
  if (!req.complete) {
    res.setHeader('connection', 'close')
    lingerOnClose(req)
  }
  // CORS headers stay: a browser player must be able to read the error too
  for (const h of res.getHeaderNames()) if (h !== 'x-request-id' && h !== 'connection' && h !== 'vary' && !h.startsWith('access-control-')) res.removeHeader(h)
  // the code in a header too: a HEAD's answer has no body, and a service asking another (a router asking a shard
  // whether it holds a chunk) still learns why (router/errors.ts shardRefusal)
  sendJson(res, e.statusCode, { error: { code: e.code, message: e.message } }, { [ERROR_CODE_HEADER]: e.code, ...e.headers })
  if (!req.complete) req.resume()
}

/** An error answer's code (CDN_ERR_*), as its JSON body's `error.code` says it where there is a body. */
export const ERROR_CODE_HEADER = 'reelcdn-error'

/** How long a connection answered before its request body ended goes on reading (and dropping) it once answered. */
const LINGER_MS = 2000

/**
 * Lingering close (RFC 9112 §9.6), for a connection answered before its
 * request body has all arrived: our answer and FIN go first, then the
 * client's bytes are read and dropped until it closes or LINGER_MS pass.
 * Closing at once with unread bytes makes the kernel reset the connection,
 * and the reset can beat the answer to the client, which then reports EPIPE
 * or ECONNRESET instead of the 401 or 507 it was sent.
 */
export function lingerOnClose(req: IncomingMessage): void {
  const socket = req.socket as import('node:net').Socket | null
  // gone already, or lingering already
  if (!socket || socket.destroyed || Object.hasOwn(socket, 'destroySoon')) return
  // what Node's server calls once a `connection: close` answer is sent
  socket.destroySoon = () => {
    if (socket.writable) socket.end()
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref()
    socket.once('close', () => clearTimeout(timer))
  }
}

/**
 * A request's body, for a handler to read with `for await`. A Readable's own
 * iterator destroys the stream when the loop throws or leaves early, and a
 * destroyed request lets go of its socket: the error's answer then finds none
 * to close lingering (lingerOnClose), nothing reads the rest of the body, and
 * the close is a reset that can beat the answer to the client (stop 35: a
 * shard's disk fault mid-upload reached the router as EPIPE, not its 500).
 * This iterator leaves the request whole; a client that leaves still ends it.
 */
export function bodyOf(req: IncomingMessage): AsyncIterable<Buffer> {
  return req.iterator({ destroyOnReturn: false })
}

/** Reads a request body of at most `max` bytes: a 413 past it, with the connection closed. */
export async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > max) throw new PayloadTooLargeError(`request body of ${declared} bytes exceeds the limit of ${max}`)
  const parts: Buffer[] = []
  let n = 0
  for await (const c of bodyOf(req)) {
    n += (c as Buffer).length
    if (n > max) throw new PayloadTooLargeError(`request body exceeds the limit of ${max} bytes`)
    parts.push(c as Buffer)
  }
  return Buffer.concat(parts, n)
}

export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const body = await readBody(req, max)
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new BadRequestError(`request body is not valid JSON: ${(err as Error).message}`, 'CDN_ERR_BAD_JSON')
  }
}

/** Query parameters, parsed only by handlers that take them. */
export function queryParams(m: Match): URLSearchParams {
  return new URLSearchParams(m.query)
}

export { CdnError }
