import t from 'tap'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody } from './harness.js'
import { startRouter } from '../../router/main.js'
import { quietLogger } from '../../lib/logger.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { startTestEdge, get, metric } from '../helpers/edge.js'

/**
 * Upstreams that misbehave: accept and never answer, answer too slowly, or
 * reset in the middle of a body. The router in front of such shards, and the
 * edge in front of such a router, fire their timeouts, answer a clear 502/504
 * or fail over, never hang a request, and never cache or pass on a bad byte.
 */
type Mode = 'pass' | 'hang' | 'slow' | 'reset'

/** A shard's stand-in: /healthz passes through (so health checks keep it on), data requests misbehave per `mode`. */
class BadShard {
  mode: Mode = 'pass'
  hits = 0
  private readonly held = new Set<ServerResponse>()
  constructor(readonly server: http.Server, readonly url: string) {}

  /** `slowMs` well past the router's header timeout: undici checks its timeouts on a coarse (~1 s) clock */
  static async start(target: string, slowMs: number): Promise<BadShard> {
    let me!: BadShard
    const server = http.createServer((req, res) => { void me.handle(req, res, target, slowMs) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    me = new BadShard(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    return me
  }

  private async handle(req: IncomingMessage, res: ServerResponse, target: string, slowMs: number): Promise<void> {
    const data = req.url!.startsWith('/v1/')
    // resets cut chunk bodies; manifests and block lists (small, asked first) pass, so the cut comes mid-read
    const chunk = /^\/v1\/chunks\/[^/]+\/\d+(\?|$)/.test(req.url!)
    if (data) this.hits++
    if (data && this.mode === 'hang') { this.held.add(res); return }
    if (data && this.mode === 'slow') await new Promise(r => setTimeout(r, slowMs))
    try {
      const up = await request(`${target}${req.url}`, { method: req.method as 'GET', headers: req.headers as Record<string, string>,
        body: req.method === 'GET' || req.method === 'HEAD' ? undefined : req })
      res.writeHead(up.statusCode, up.headers as http.OutgoingHttpHeaders)
      let sent = 0
      for await (const piece of up.body) {
        if (chunk && this.mode === 'reset' && sent + piece.length > 1000) {
          res.write(piece.subarray(0, Math.max(0, 1000 - sent)))
          await new Promise(r => setTimeout(r, 10))
          res.socket?.destroy()
          up.body.destroy()
          return
        }
        sent += piece.length
        if (!res.write(piece)) await once(res, 'drain')
      }
      res.end()
    } catch {
      res.destroy()
    }
  }

  async close(): Promise<void> {
    for (const r of this.held) r.destroy()
    this.server.closeAllConnections()
    await new Promise(r => this.server.close(r))
  }
}

t.test('the router in front of shards that hang, stall or reset', async t => {
  const timeouts = { 'router.upstream.headersTimeoutMs': 300, 'router.upstream.bodyTimeoutMs': 300, 'router.upstream.connectTimeoutMs': 300 }
  const c = await TestCluster.start(t, { chunkSize: 65536, overrides: timeouts })
  const body = randomBody(5 * 65536 + 123)
  t.equal((await c.ingest('bad', body)).status, 201)
  const bad = await Promise.all(c.ports.map(p => BadShard.start(`http://127.0.0.1:${p}`, 2500)))
  t.teardown(() => Promise.all(bad.map(b => b.close())))
  const r = await startRouter(c.config(3, { ...timeouts, 'cluster.shards': bad.map((b, i) => ({ id: `shard-${i + 1}`, url: b.url, weight: 1 })) }),
    { logger: quietLogger('router'), env: { REELCDN_ROUTER_TOKEN: TOKEN } })
  t.teardown(() => r.close())
  await r.cluster.health.checkAll()
  const read = async (range?: string) => {
    const t0 = Date.now()
    try {
      const res = await request(`${r.url}/v1/content/bad`, { headers: range ? { range } : {}, headersTimeout: 15_000, bodyTimeout: 15_000 })
      const b = Buffer.from(await res.body.arrayBuffer())
      return { status: res.statusCode, body: b, ms: Date.now() - t0, error: undefined as string | undefined }
    } catch (err) {
      return { status: 0, body: Buffer.alloc(0), ms: Date.now() - t0, error: (err as Error).message }
    }
  }

  for (const mode of ['hang', 'slow'] as const) {
    for (const b of bad) b.mode = mode
    const got = await read()
    t.equal(got.status, 504, `every owner ${mode}s: ${got.status} ${got.body.toString().slice(0, 120)} (${got.ms} ms)`)
    t.match(got.body.toString(), /CDN_ERR_UPSTREAM_TIMEOUT/)
    t.ok(got.ms < 8000, 'in bounded time')
  }
  for (const b of bad) b.mode = 'reset'
  const cut = await read()
  // every owner cut before a whole block arrived: nothing was sent, so the router can still answer 503 (no
  // replica could serve); once bytes have gone out, only a cut body is left
  t.ok(cut.status === 502 || cut.status === 503 || cut.error !== undefined, `every owner resets mid-body: ${cut.status || cut.error}`)
  if (cut.status >= 500) t.match(cut.body.toString(), /"code":"CDN_ERR_NO_REPLICA".*bad/, `a JSON error naming the chunk: ${cut.body}`)
  t.notOk(cut.status === 200 && cut.body.length === body.length, 'never a complete 200')

  // one of each: the reads fail over and stay byte-exact
  bad[0]!.mode = 'hang'
  bad[1]!.mode = 'slow'
  bad[2]!.mode = 'pass'
  for (const range of [undefined, 'bytes=70000-200000', 'bytes=-5']) {
    const got = await read(range)
    const want = range === undefined ? body : range === 'bytes=-5' ? body.subarray(body.length - 5) : body.subarray(70000, 200001)
    t.ok(got.status < 300 && got.body.equals(want), `${range ?? 'whole'}: byte-exact with one owner hanging and one slow (${got.ms} ms)`)
  }
  bad[0]!.mode = 'reset'
  bad[1]!.mode = 'reset'
  const got = await read()
  t.ok(got.status === 200 && got.body.equals(body), `two owners resetting mid-body: byte-exact (${got.ms} ms)`)
  for (const b of bad) b.mode = 'pass'
  t.equal((await c.get('/healthz')).status, 200)
})

t.test('the edge in front of an upstream that hangs, stalls or resets: clear errors, nothing bad cached', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const CS = 128 * 1024
  const bytes = titleBytes(2 * CS, 'chaos-edge')
  await up.addTitle('e', bytes, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.upstreamHeadersTimeoutMs': 300, 'edge.upstreamIdleTimeoutMs': 300,
    'edge.fillTimeoutMs': 3000, 'edge.readaheadChunks': 0 })
  const first = { range: `bytes=0-${CS - 1}` }
  const timed = async (headers: Record<string, string>) => {
    const t0 = Date.now()
    const r = await get(`${edge.url}/v1/content/e`, headers).catch((err: Error) => ({ status: 0, body: Buffer.alloc(0), error: err.message }))
    return { ...r, ms: Date.now() - t0 }
  }

  up.fault('e', 0, { hang: true })
  const hung = await timed(first)
  t.equal(hung.status, 504, `upstream hangs: 504 (${hung.ms} ms)`)
  t.ok(hung.ms < 5000, 'in bounded time')

  up.fault('e', 0, { resetAt: 50_000 })
  const reset = await timed(first)
  t.ok(reset.status === 0 || reset.status === 502 || (reset.status === 206 && reset.body.length < CS), `reset mid-body: ${reset.status}, ${reset.body.length} bytes`)
  t.notOk(reset.status === 206 && reset.body.length === CS, 'never a complete 206')

  up.fault('e', 0, {})
  up.throttle(16 * 1024 / 0.6) // a 16 KiB piece every 600 ms: silences longer than the idle timeout
  const stalled = await timed(first)
  t.ok(stalled.status === 0 || stalled.status === 504 || stalled.body.length < CS, `stalling upstream: ${stalled.status}, ${stalled.body.length} bytes (${stalled.ms} ms)`)
  t.ok(stalled.ms < 8000, 'in bounded time')
  up.throttle(4 * 1024 * 1024) // slow but steady: served
  const slow = await timed({ range: `bytes=${CS}-${2 * CS - 1}` })
  t.ok(slow.status === 206 && slow.body.equals(bytes.subarray(CS)), 'a slow, steady upstream is served byte-exact')
  up.throttle(0)

  t.equal(await metric(edge.url, 'reelcdn_edge_tier_chunks', { tier: 'ram' }) + await metric(edge.url, 'reelcdn_edge_tier_chunks', { tier: 'disk' }) > 0, true)
  const before = up.requests('e', 0)
  const good = await timed(first)
  t.ok(good.status === 206 && good.body.equals(bytes.subarray(0, CS)), 'once the upstream behaves, chunk 0 is byte-exact')
  t.equal(up.requests('e', 0), before + 1, 'and it was fetched again: none of the bad fills was cached')
  await edge.close()
})
