import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import { fork } from 'node:child_process'
import net, { type Socket } from 'node:net'
import { pipeline } from 'node:stream'
import { parentPort, workerData } from 'node:worker_threads'
import { LRUCache } from 'lru-cache'
import { checkRequest, guardServer, httpServerOptions, readTls, RELAY_PEER_HEADER, RELAY_SECRET_HEADER, requestId, sendJson } from '../../lib/http/http.js'
import { reasonOf } from '../../lib/http/http-conformance.js'
import { parseContentId } from '../../lib/ids.js'
import { FILE_KINDS, PLAYLIST_KINDS, RESPONSE_KINDS } from '../../lib/metrics.js'
import { isAdaptive } from '../../lib/manifest.js'
import { hasBody, planResponse, sendPlanned, type ResponsePlan } from '../../lib/representation.js'
import { loadKeyRing, requestToken } from '../../lib/security/tokens.js'
import { demandSession, PlayAuth } from './play-auth.js'
import { sender, type Send, type SendPiece } from './send.js'
import { ThreadDisk } from './thread-disk.js'
import { cors, firstChunk, lastChunk, noBytes, responseKind } from './server.js'
import { monotonicNow } from '../fill/meta-cache.js'
import { sessionOf, streamOf } from './session-id.js'
import { buildTitle, chunkRef, initOnly, renditionFile, type Title, type TitleFile } from '../title.js'
import { CONTENT_ROUTE, FILE_ROUTE, TOKEN_FILE_ROUTE, type Batch, type ThreadInit, type ToMain, type ToThread } from './serve-threads.js'
import { fileRequest, splitContentPath } from './content-path.js'
import { playlistOf } from './playlists.js'

/**
 * A serve thread (edge/serve/serve-threads.ts explains the design). It accepts
 * player connections on the edge's listening socket next to the main thread
 * and answers what it can answer from memory alone: GET/HEAD of a file (a
 * single-file title's bytes, or a rendition's) whose title's metadata is fresh
 * in its copy, for a single range inside one chunk its copy of the RAM tier
 * holds (the very Buffers of the RAM tier: shared memory, no copy), answers
 * without a body (304, HEAD, empty), and an adaptive title's playlists
 * (generated from its copy of the manifest). The bytes go out the same way as
 * from the main thread: headers and the subarray in one write.
 * A range inside one chunk the disk tier holds is read by the thread itself
 * (edge/serve/thread-disk.ts: its own handles, the same verified pieces as the
 * main thread's, headers with the first piece that verified); a chunk that
 * cannot be opened, or fails its CRC before the first byte, is relayed (the
 * main thread then fills it again), one failing after is cut, never sent.
 * Every other request is relayed to the main thread over a local socket, with
 * its client's address, and the answer piped back with backpressure: misses,
 * several ranges, errors, admin routes, /metrics.
 *
 * What a hit here changes in the main thread's state (the policy's recency,
 * readahead, sessions, demand, metrics) is batched and posted every
 * `flushMs`; the main thread applies it as if it had served the hit.
 */
const init = workerData as ThreadInit
const port = parentPort!
const cfg = init.config
const h = cfg.http
const PREFIX = '/v1/content/'

const ram = new Map<string, Buffer>()
const disk = cfg.edge.diskBytes > 0
  ? new ThreadDisk(cfg.edge.dataDir, cfg.edge.readSize, cfg.edge.openFiles, (key, block) => post({ t: 'corrupt', key, block }))
  : undefined
const titles = new LRUCache<string, { title: Title; expiresAt: number }>({ max: cfg.edge.metaMaxEntries })
// the keys verify tokens for demand even when they are not required (play-auth.ts `demandSession`)
const ring = loadKeyRing(cfg.edge.tokenKeysFile, init.env)
const tokens = ring ? new PlayAuth(ring) : undefined
const auth = cfg.edge.requireToken ? tokens : undefined
let draining = false

function emptyBatch(): Batch {
  const responses = {} as Batch['responses']
  for (const k of RESPONSE_KINDS) responses[k] = 0
  const files = {} as Batch['files']
  for (const k of FILE_KINDS) files[k] = 0
  const playlists = {} as Batch['playlists']
  for (const k of PLAYLIST_KINDS) playlists[k] = 0
  const diskFiles = {} as Batch['diskFiles']
  for (const k of FILE_KINDS) diskFiles[k] = 0
  return { responses, files, playlists, served: 0, relayed: 0, refused: 0, clientErrors: [], reads: 0, bytes: 0, diskReads: 0, diskBytes: 0, diskFiles,
    stalls: 0, pending: 0, inflight: 0, ttfb: [], diskTtfb: [], http: [], hits: [], demand: [], log: [] }
}
let batch = emptyBatch()
let dirty = false
let lastPending = 0
/** requests this thread is answering itself (reelcdn_http_requests_in_flight counts them with the main thread's) */
let inflight = 0
let lastInflight = 0
/** pieces of disk hits waiting for their player's socket to drain (with send.pending(): this thread's part of reelcdn_edge_responses_blocked) */
let drainWaits = 0
const send = sender(cfg.edge.sendStallTimeoutMs, { stalled: () => { batch.stalls++; dirty = true }, blocked: d => { drainWaits += d } })

const flush = setInterval(() => {
  const pending = send.pending() + drainWaits
  if (!dirty && pending === lastPending && inflight === lastInflight) return
  batch.pending = lastPending = pending
  batch.inflight = lastInflight = inflight
  post({ t: 'batch', batch })
  batch = emptyBatch()
  dirty = false
}, init.flushMs)
flush.unref()

function post(m: ToMain): void {
  port.postMessage(m)
}

/** A request this thread refused itself (checkRequest, the parser, CONNECT, an expectation), counted as the main thread counts its own. */
function refused(reason: string): void {
  batch.refused++
  batch.clientErrors.push(reason)
  dirty = true
}

const agent = new http.Agent({ keepAlive: true })
const handler = (req: IncomingMessage, res: ServerResponse) => {
  if (draining) res.shouldKeepAlive = false
  // also rewrites an absolute-form target to origin-form, which is what the relay passes on
  const refusal = checkRequest(req, h)
  if (refusal !== undefined) {
    // answered here: the relayed request would no longer show what was wrong with it
    res.shouldKeepAlive = false
    refused(reasonOf(refusal.code))
    return sendJson(res, refusal.statusCode, { error: { code: refusal.code, message: refusal.message } }, { 'x-request-id': requestId(req) })
  }
  const url = req.url ?? '/'
  try {
    if ((req.method === 'GET' || req.method === 'HEAD') && url.startsWith(PREFIX) && serve(req, res, url)) return
  } catch {
    if (!res.headersSent) return relay(req, res)
    return void res.destroy()
  }
  relay(req, res)
}
const server = h.tlsCertFile
  ? https.createServer({ ...httpServerOptions(h), ...readTls(h.tlsCertFile, h.tlsKeyFile) }, handler)
  : http.createServer(httpServerOptions(h), handler)
guardServer(server, h, { allow: () => init.allow, refused })
server.on('error', err => post({ t: 'error', message: `listener: ${err.message}` }))
/** open client connections, for an upgrade's drain */
const open = new Set<Socket>()
server.on('connection', (s: Socket) => { open.add(s); s.once('close', () => open.delete(s)); send.slices.accepted() })

/** Answers the request from memory if it can (true), before writing anything otherwise (false). */
function serve(req: IncomingMessage, res: ServerResponse, url: string): boolean {
  const t0 = performance.now()
  const q = url.indexOf('?')
  const path = splitContentPath(q < 0 ? url.slice(PREFIX.length) : url.slice(PREFIX.length, q))
  if (path === undefined) return false
  const id = parseContentId(path.contentId)
  // an unknown name, a title's manifest: the main thread answers
  const want = path.name === undefined ? undefined : fileRequest(path.name)
  if (want?.kind === 'meta' || (path.name !== undefined && want === undefined)) return false
  const e = titles.get(id)
  if (e === undefined || e.expiresAt <= monotonicNow()) return false
  const title = e.title
  const adaptive = isAdaptive(title.manifest)
  // the errors (an adaptive title's bytes, a single file's playlists, an unknown rendition) are the main thread's to answer
  if (want === undefined ? adaptive : !adaptive) return false
  const token = path.token ?? requestToken(q < 0 ? '' : url.slice(q + 1), req.headers.authorization)
  const peer = req.socket.remoteAddress ?? ''
  if (auth !== undefined) auth.check(token, id, peer, Date.now())
  const route = path.name === undefined ? CONTENT_ROUTE : path.token === undefined ? FILE_ROUTE : TOKEN_FILE_ROUTE
  if (want !== undefined && want.kind !== 'rendition') {
    if (want.kind === 'media' && renditionFile(title, want.rid) === undefined) return false
    const p = playlistOf(title, want, cfg.edge.metaTtlMs / 1000)
    const plan = planResponse(req, p.rep, cfg.http.maxRanges)
    answered(req, res, t0, route)
    batch.responses[responseKind(req, plan)]++
    batch.playlists[want.kind]++
    void sendPlanned(res, plan, p.body.length, async (s, e, r) => void r.write(p.body.subarray(s, e + 1)))
    return true
  }
  const file = want === undefined ? title.file : renditionFile(title, want.rid)
  if (file === undefined) return false
  return serveFile(req, res, t0, route, file, token, peer)
}

/** A file's bytes from this thread's copy of the RAM tier (true), or false before anything is written. */
function serveFile(req: IncomingMessage, res: ServerResponse, t0: number, route: string, file: TitleFile, token: string | undefined, peer: string): boolean {
  const plan = planResponse(req, file.rep, cfg.http.maxRanges)
  const body = hasBody(req, plan)
  let buf: Buffer | undefined
  let start = 0
  let end = -1
  let index = 0
  let key = ''
  if (body) {
    if (plan.multipart !== null) return false
    start = plan.ranges === null ? 0 : plan.ranges[0]!.start
    end = plan.ranges === null ? file.size - 1 : plan.ranges[0]!.end
    index = Math.floor(start / file.chunkSize)
    if (Math.floor(end / file.chunkSize) !== index) return false
    key = chunkRef(file, index).key
    buf = ram.get(key)
    if (buf === undefined) {
      if (disk === undefined || !disk.has(key)) return false
      void serveDisk(req, res, t0, route, file, plan, start, end, key, token, peer)
      return true
    }
  }
  // answered here from now on
  begin(req, res, t0, route, file, plan, body, token, peer)
  const id = file.contentId
  const rid = file.rid ?? ''
  if (buf === undefined) {
    void sendPlanned(res, plan, file.size, noBytes)
    return true
  }
  res.statusCode = plan.status
  for (const k in plan.headers) res.setHeader(k, plan.headers[k]!)
  const base = index * file.chunkSize
  send.end(res, buf.subarray(start - base, end - base + 1))
  batch.ttfb.push((performance.now() - t0) / 1000)
  batch.reads++
  batch.bytes += end - start + 1
  batch.files[file.kind] += end - start + 1
  batch.hits.push(id, rid, index, init.sessions ? streamOf(sessionOf(req, id), file) : '', end - start + 1, key, initOnly(file, end) ? 0 : 1, 0)
  return true
}

/**
 * A file's answer is this thread's from now on: counted, and its demand recorded, under `token` if it verifies, else the
 * client's address (play-auth.ts demandSession; checked here, where a body is counted, and not for what is relayed).
 */
function begin(req: IncomingMessage, res: ServerResponse, t0: number, route: string, file: TitleFile, plan: ResponsePlan, body: boolean,
  token: string | undefined, peer: string): void {
  answered(req, res, t0, route)
  batch.responses[responseKind(req, plan)]++
  const id = file.contentId
  if (body) batch.demand.push(demandSession(token, auth !== undefined, tokens, id, peer, Date.now()), id, file.rid ?? '', file.kind, firstChunk(plan, file), lastChunk(plan, file), file.chunks.length)
}

/** set once the thread could not open the disk index: said once, every disk hit then relayed */
let diskFailed = false

/**
 * Bytes [start, end] of the file, inside one chunk the disk tier holds, read
 * and verified here. Nothing is written before the first piece has verified
 * (the status and headers go with it); until then any failure (the chunk gone,
 * a corrupt block, a read error) relays the request to the main thread, which
 * answers it as a miss if the chunk has gone. After it, a failure only cuts
 * the response: no byte that failed its CRC is ever sent.
 */
async function serveDisk(req: IncomingMessage, res: ServerResponse, t0: number, route: string, file: TitleFile, plan: ResponsePlan,
  start: number, end: number, key: string, token: string | undefined, peer: string): Promise<void> {
  const got = await disk!.open(key).catch((err: Error) => {
    // the thread cannot read the disk index (its own read-only connection): every disk hit is relayed, said once
    if (!diskFailed) post({ t: 'error', message: `disk hits are relayed: ${err.message}` })
    diskFailed = true
    return undefined
  })
  if (got === undefined) return notSent(req, res)
  const index = Math.floor(start / file.chunkSize)
  const base = index * file.chunkSize
  let begun = false
  let sent = 0
  const first = () => {
    if (begun) return
    begun = true
    begin(req, res, t0, route, file, plan, true, token, peer)
    res.statusCode = plan.status
    for (const k in plan.headers) res.setHeader(k, plan.headers[k]!)
    batch.diskTtfb.push((performance.now() - t0) / 1000)
    batch.diskReads++
    const id = file.contentId
    batch.hits.push(id, file.rid ?? '', index, init.sessions ? streamOf(sessionOf(req, id), file) : '', end - start + 1, key, initOnly(file, end) ? 0 : 1, 1)
  }
  const piece: SendPiece = (r, p, written) => {
    first()
    sent += p.length
    return send(r, p, written)
  }
  const ends: Send['end'] = (r, p, written) => {
    first()
    sent += p.length
    send.end(r, p, written)
  }
  try {
    await disk!.writeRange(got.row, got.h, start - base, end - base, res, piece, ends)
  } catch {
    // after the first byte: only cut. Before it: the main thread answers, from a fill if the chunk was dropped
    if (begun) res.destroy()
    else notSent(req, res)
  } finally {
    disk!.release(got.h)
    batch.diskBytes += sent
    batch.diskFiles[file.kind] += sent
    dirty = true
  }
}

/** A disk hit this thread could not send (gone, corrupt, unreadable) before its first byte: relayed, unless its client has left meanwhile. */
function notSent(req: IncomingMessage, res: ServerResponse): void {
  if (!res.destroyed) return relay(req, res)
  batch.clientErrors.push('client_gone')
  dirty = true
}

/** From here on the thread answers the request: its metrics, id and CORS. */
function answered(req: IncomingMessage, res: ServerResponse, t0: number, route: string): void {
  const reqId = requestId(req)
  inflight++
  account(req, res, t0, route, reqId, true)
  res.setHeader('x-request-id', reqId)
  cors(res, cfg.edge.corsOrigin)
  batch.served++
  dirty = true
}

/** The request in the service's HTTP metrics, as the main thread counts its own. */
function account(req: IncomingMessage, res: ServerResponse, t0: number, route: string, reqId: string, inFlight = false): void {
  res.on('close', () => {
    if (inFlight) inflight--
    const secs = (performance.now() - t0) / 1000
    batch.http.push(route, req.method ?? '', res.statusCode, secs, res.writableFinished ? 1 : 0)
    if (cfg.log.requests) batch.log.push(reqId, req.method ?? '', req.url ?? '', res.statusCode, Math.round(secs * 1000), res.writableFinished ? 1 : 0, req.socket.remoteAddress ?? '')
    if (!res.writableFinished) batch.clientErrors.push('client_gone')
    dirty = true
  })
}

/** Passes the request to the main thread and its answer back. */
function relay(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/'
  batch.relayed++
  dirty = true
  const headers: http.OutgoingHttpHeaders = {}
  for (const k in req.headers) if (!HOP.has(k)) headers[k] = req.headers[k]
  headers[RELAY_SECRET_HEADER] = init.secret
  headers[RELAY_PEER_HEADER] = req.socket.remoteAddress ?? ''
  const t0 = performance.now()
  let answered = false
  let gone = false
  const up = http.request({ agent, socketPath: init.relayPath, method: req.method, path: req.url, headers, setHost: false })
  up.on('response', ans => {
    answered = true
    const out: string[] = []
    const raw = ans.rawHeaders
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!.toLowerCase()
      if (k === 'connection') {
        if (/close/i.test(raw[i + 1]!)) res.shouldKeepAlive = false
      } else if (!HOP.has(k) && k !== 'transfer-encoding') out.push(raw[i]!, raw[i + 1]!)
    }
    res.sendDate = false // the main thread's Date is among its headers
    res.writeHead(ans.statusCode ?? 502, out)
    pipeline(ans, res, () => {})
  })
  up.on('error', err => {
    // an answer is on its way (the main thread may answer before reading a request body, then close): let it finish
    if (answered) return
    // the client left, and the relay was cut for it: nothing failed on our side
    if (gone) return
    if (res.headersSent) return void res.destroy()
    const reqId = requestId(req)
    post({ t: 'error', message: `relay to the main thread failed (request ${reqId}): ${(err as NodeJS.ErrnoException).code ?? err.message}` })
    account(req, res, t0, url.startsWith(PREFIX) ? CONTENT_ROUTE : 'unmatched', reqId)
    res.shouldKeepAlive = false
    cors(res, cfg.edge.corsOrigin)
    sendJson(res, 502, { error: { code: 'CDN_ERR_RELAY', message: 'the edge could not pass the request to its main thread' } }, { 'x-request-id': reqId })
  })
  res.on('close', () => {
    if (res.writableFinished) return
    gone = true
    if (!answered) { batch.clientErrors.push('client_gone'); dirty = true }
    up.destroy()
  })
  req.pipe(up)
}
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', RELAY_SECRET_HEADER, RELAY_PEER_HEADER])

port.on('message', (m: ToThread) => {
  switch (m.t) {
    case 'ram+': ram.set(m.key, Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength)); break
    case 'ram-': for (const k of m.keys) ram.delete(k); break
    case 'disk+': disk?.added(m.rows); break
    case 'disk-': disk?.removed(m.keys); break
    case 'meta+': titles.set(m.id, { title: buildTitle(m.manifest), expiresAt: m.expiresAt }); break
    case 'meta-': titles.delete(m.id); break
    case 'sync': post({ t: 'synced', n: m.n }); break
    case 'listen': listen(m.fd); break
    case 'drain': void drain(m.graceMs, m.lingerMs ?? 0); break
  }
})

/**
 * Listens on the main thread's listening socket `fd` through a descriptor of
 * this thread's own (edge/serve/listen-dup.ts), so that each thread closes only its
 * own: a descriptor shared by two event loops would be closed twice, the
 * second time perhaps someone else's.
 */
function listen(fd: number): void {
  const child = fork(new URL('./listen-dup.js', import.meta.url), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc', fd], execArgv: [] })
  child.once('error', err => post({ t: 'error', message: `cannot get a descriptor of the listening socket: ${err.message}` }))
  child.once('message', (_m, handle) => {
    const h = (handle as { _handle?: object } | undefined)?._handle
    if (h === undefined) return post({ t: 'error', message: 'the listening socket did not arrive from listen-dup' })
    server.listen(h, () => post({ t: 'listening' }))
  })
}

/** Stops serving: closes this thread's listener, lets answers in flight finish (up to `graceMs`), closes every connection. */
async function drain(graceMs: number, lingerMs: number): Promise<void> {
  draining = true
  const deadline = Date.now() + graceMs
  if (lingerMs > 0) {
    // an upgrade: stop accepting but let keep-alive connections end themselves (each next answer says Connection: close),
    // as the main thread does (lib/http/http.ts, close({ handover })); http.Server#close would close the idle ones at once
    net.Server.prototype.close.call(server)
    const linger = Math.min(deadline, Date.now() + lingerMs)
    while (open.size > 0 && Date.now() < linger) await new Promise(r => setTimeout(r, 10))
  }
  server.close()
  for (;;) {
    server.closeIdleConnections()
    const active = await new Promise<number>(resolve => server.getConnections((_e, n) => resolve(n)))
    if (active === 0 || Date.now() >= deadline) break
    await new Promise(r => setTimeout(r, 20))
  }
  server.closeAllConnections()
  ram.clear()
  await disk?.close()
  titles.clear()
  agent.destroy()
  clearInterval(flush)
  batch.pending = 0
  post({ t: 'batch', batch })
  post({ t: 'drained' })
}

process.on('uncaughtException', err => post({ t: 'error', message: err.stack ?? err.message }))
process.on('unhandledRejection', err => post({ t: 'error', message: String((err as Error)?.stack ?? err) }))
