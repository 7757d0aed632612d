import { rm } from 'node:fs/promises'
import type { Test } from 'tap'
import { createLogger } from '../../lib/logger.js'
import { startOrigin } from '../../origin/main.js'
import { startRouter } from '../../router/main.js'
import { TestCluster, TOKEN, EDGE_TOKEN, TOKEN_KEYS, randomBody } from '../system/harness.js'
import { FakeUpstream } from './fake-upstream.js'
import { titleBytes } from './titles.js'
import { freshDir, metric, startTestEdge, until } from './edge.js'
import { logSink, originConfig, putChunk, randomChunk } from './origin.js'
import { raw, type Raw } from './hostile.js'

/**
 * Every HTTP surface reelcdn has, each with a good path and its own log: a
 * shard, a router (whose shards log into the same sink: what the router's
 * client does reaches them), an edge, and an edge with a serve thread (whose
 * handler path is its own: edge/serve/serve-thread.ts). For tests of rules
 * that hold on every service: issue 14's HTTP conformance, and what is
 * logged at which level.
 *
 * On the threaded edge the kernel hands each new connection to the main
 * thread or the serve thread, so `send` there sends a case several times, on
 * fresh connections, and returns every answer: each must be right.
 */
export interface LiveSurface {
  name: string
  base: string
  /** answers 200 to GET, with `body` */
  good: string
  body: Buffer
  /** with `big`: answers 200 to GET with a few MiB, long enough to be cut mid-answer */
  big: string
  /** every line the service (and, for the router, its shards) logged, parsed */
  lines: Record<string, any>[]
  /** an edge with a serve thread */
  threads: boolean
  /** requests in flight in the service (and the router's shards) */
  active(): number
  /** sends raw bytes on fresh connections (several times on the threaded edge); every answer */
  send(data: string | Buffer, waitMs?: number): Promise<Raw[]>
}

const BIG = 6 * 1024 * 1024

export async function startSurfaces(t: Test, o: { overrides?: Record<string, unknown>; big?: boolean } = {}): Promise<LiveSurface[]> {
  const overrides = o.overrides ?? {}
  const surfaces: LiveSurface[] = []
  const add = (s: Omit<LiveSurface, 'send' | 'threads'>, threads = false) => {
    const times = threads ? 8 : 1
    surfaces.push({ ...s, threads,
      send: async (data, waitMs) => { const all: Raw[] = []; for (let i = 0; i < times; i++) all.push(await raw(s.base, data, waitMs)); return all } })
  }

  // a cluster of shards whose log is ours to read, and a router over them
  const c = new TestCluster(t, { overrides, chunkSize: 1024 * 1024 })
  t.teardown(async () => {
    await c.close()
    await rm(c.dir, { recursive: true, force: true })
  })
  const routerSink = logSink()
  for (let i = 0; i < 3; i++) {
    const base = c.config()
    const o = await startOrigin({ ...base, origin: { ...base.origin, port: 0, dataDir: c.shardDir(i) } },
      { logger: createLogger(`origin-${i + 1}`, 'info', routerSink), env: {} })
    c.shards[i] = o
    c.ports[i] = o.port
  }
  c.router = await startRouter(c.config(), { logger: createLogger('router', 'info', routerSink),
    env: { REELCDN_ROUTER_TOKEN: TOKEN, REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS } })
  await c.router.cluster.health.checkAll()
  const title = randomBody(150_000)
  for (const [id, body] of [['good', title], ...(o.big ? [['big', randomBody(BIG)] as const] : [])] as const) {
    if ((await c.ingest(id, body)).status !== 201) throw new Error(`cannot ingest ${id}`)
  }
  const router = c.router
  add({ name: 'router', base: router.url, good: '/v1/content/good', body: title, big: '/v1/content/big', lines: routerSink.lines,
    active: () => router.server.http.active + c.shards.reduce((n, s) => n + (s?.server.http.active ?? 0), 0) })

  const shardSink = logSink()
  // not t.testdir(): the TestCluster called it, and each call empties the directory
  const shard = await startOrigin(originConfig(freshDir(t), { 'log.level': 'info', ...overrides }), { logger: createLogger('origin', 'info', shardSink) })
  t.teardown(() => shard.close())
  const chunk = randomChunk(50_000)
  for (const [id, body] of [['good', chunk], ...(o.big ? [['big', randomChunk(BIG)] as const] : [])] as const) {
    if ((await putChunk(shard.url, id, 0, body)).status !== 201) throw new Error(`cannot store the shard's ${id} chunk`)
  }
  add({ name: 'shard', base: shard.url, good: '/v1/chunks/good/0', body: chunk, big: '/v1/chunks/big/0', lines: shardSink.lines,
    active: () => shard.server.http.active })

  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(300_000, 'surfaces')
  await up.addTitle('good', bytes, { chunkSize: 128 * 1024 })
  if (o.big) await up.addTitle('big', titleBytes(BIG, 'surfaces-big'), { chunkSize: 1024 * 1024 })
  for (const threads of [false, true]) {
    const sink = logSink()
    const edge = await startTestEdge(t, up, { ...overrides, ...(threads ? { 'edge.serveThreads': 1, 'edge.readaheadChunks': 0 } : {}) } as never, {},
      createLogger('edge', 'info', sink))
    if (threads) {
      // warm: the title's metadata and chunks in RAM, so the thread can answer hits as well as relay
      await raw(edge.url, 'GET /v1/content/good HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n')
      await until(() => edge.cache.ram.stats().entries === 3, 'the title in RAM')
    }
    add({ name: threads ? 'edge with a serve thread' : 'edge', base: edge.url, good: '/v1/content/good', body: bytes, big: '/v1/content/big',
      lines: sink.lines, active: () => edge.server.http.active }, threads)
  }
  return surfaces
}

/** The threads' count of requests by outcome (served, relayed, refused): 0 on a service without threads. */
export function threadOutcomes(s: LiveSurface, outcome: string): Promise<number> {
  return s.threads ? metric(s.base, 'reelcdn_edge_serve_thread_requests_total', { outcome }) : Promise.resolve(0)
}

/** The JSON error of an answer, if it has one. */
export function jsonError(r: Raw): { code: string; message: string } | undefined {
  try {
    return (JSON.parse(r.body) as { error: { code: string; message: string } }).error
  } catch {
    return undefined
  }
}
