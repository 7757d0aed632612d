import { join } from 'node:path'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { loadConfig, type Config } from '../../lib/config/config.js'
import { quietLogger } from '../../lib/logger.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { startOrigin, type RunningOrigin } from '../../origin/main.js'
import { startRouter, type RunningRouter } from '../../router/main.js'
import { sha256Hex } from '../../router/cluster/keys.js'
import { KeyRing, signViewer } from '../../lib/security/tokens.js'

/**
 * A real cluster for system tests: shards and a router in this process, on
 * 127.0.0.1 port 0, data in the test's own directory. Health checks run once
 * at start and then only when a test asks (`router.cluster.health.checkAll()`),
 * and the background repairer is off, so tests decide when things happen.
 */
export interface TestT {
  testdir(): string
  teardown(fn: () => unknown): void
}

export interface ClusterOptions {
  shards?: number
  copies?: number
  chunkSize?: number
  /** dotted config paths, as flags would set them */
  overrides?: Record<string, unknown>
  /** the router's environment, over the default (admin token, edge credential, token keys) */
  env?: NodeJS.ProcessEnv
}

export const TOKEN = 'test-admin-token'
/** the edge credential (heartbeats, demand reports) and play token keys the test router starts with */
export const EDGE_TOKEN = 'test-edge-credential'
export const TOKEN_KEYS = 'k1:test-token-key-one-0123456789'
/** A viewer credential for `id` under TOKEN_KEYS, valid for an hour: what `/v1/play?viewer=` takes. */
export function viewerCredential(id: string): string {
  return signViewer(KeyRing.parse(TOKEN_KEYS), id, Math.floor(Date.now() / 1000) + 3600)
}

export class TestCluster {
  shards: (RunningOrigin | undefined)[] = []
  ports: number[] = []
  router!: RunningRouter
  /** this cluster's directory; tests may put their own files here */
  readonly dir: string

  /**
   * Outside tap's fixture directory: tap removes that at the end of a test
   * before or after the test's teardowns, depending on which was registered
   * first, so a cluster still closing (a repair pass leaving its report on
   * the shards, say) wrote into a directory being removed: ENOTEMPTY. The
   * cluster removes its own directory once it has closed.
   */
  constructor(_t: TestT, private readonly o: ClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'reelcdn-test-cluster-'))
  }

  static async start(t: TestT, o: ClusterOptions = {}): Promise<TestCluster> {
    const c = new TestCluster(t, o)
    t.teardown(async () => {
      await c.close()
      await rm(c.dir, { recursive: true, force: true })
    })
    for (let i = 0; i < (o.shards ?? 3); i++) await c.startShard(i)
    await c.startRouter()
    return c
  }

  get url(): string {
    return this.router.url
  }

  shardDir(i: number): string {
    return join(this.dir, `shard-${i + 1}`)
  }

  config(shardCount = this.ports.length, extra: Record<string, unknown> = {}): Readonly<Config> {
    const shards = this.ports.slice(0, shardCount).map((port, i) => ({ id: `shard-${i + 1}`, url: `http://127.0.0.1:${port}`, weight: 1 }))
    return loadConfig({
      env: {},
      overrides: {
        'log.level': 'silent',
        'http.shutdownGraceMs': 0,
        'cluster.chunkSize': this.o.chunkSize ?? 65536,
        'cluster.copies': this.o.copies ?? 3,
        'cluster.shards': shards.length ? shards : [{ id: 'none', url: 'http://127.0.0.1:1', weight: 1 }],
        'origin.host': '127.0.0.1',
        'origin.reserveBytes': 0,
        'origin.memoryCacheBytes': 0,
        'origin.scrubRateMBps': 0,
        // no shard token: tests read and break shards directly (issue-14-10 checks the closed default)
        'origin.insecureOpenWrites': true,
        'router.host': '127.0.0.1',
        'router.port': 0,
        'router.health.intervalMs': 3600_000,
        'router.health.fall': 1,
        'router.health.rise': 1,
        'router.repair.intervalMs': 0,
        'router.repair.rateMBps': 0,
        'router.catalogRefreshMs': 3600_000,
        'router.dataDir': join(this.dir, 'router'),
        'router.manifestTtlMs': 0,
        'router.upstream.retries': 0,
        ...(this.o.overrides as Record<string, never>),
        ...(extra as Record<string, never>),
      },
    })
  }

  /** Starts shard i (again), on its old port if it had one. */
  async startShard(i: number, opts: { wipe?: boolean } = {}): Promise<RunningOrigin> {
    if (opts.wipe) await rm(this.shardDir(i), { recursive: true, force: true })
    const base = this.config()
    const s = await startOrigin({ ...base, origin: { ...base.origin, id: `shard-${i + 1}`, port: this.ports[i] ?? 0, dataDir: this.shardDir(i) } },
      { logger: quietLogger(`origin-${i + 1}`), env: {} })
    this.shards[i] = s
    this.ports[i] = s.port
    return s
  }

  async stopShard(i: number): Promise<void> {
    await this.shards[i]?.close()
    this.shards[i] = undefined
  }

  /** (Re)starts the router over the first `shardCount` shards. */
  async startRouter(shardCount = this.ports.length, extra: Record<string, unknown> = {}): Promise<RunningRouter> {
    await this.router?.close()
    this.router = await startRouter(this.config(shardCount, extra), { logger: quietLogger('router'),
      env: { REELCDN_ROUTER_TOKEN: TOKEN, REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS, ...this.o.env } })
    await this.router.cluster.health.checkAll()
    return this.router
  }

  /** PUTs a title with its digest; `token: null` sends none. */
  async ingest(id: string, body: Buffer, o: { meta?: object; token?: string | null; digest?: boolean } = {}) {
    const headers: Record<string, string> = { 'content-type': 'video/mp4' }
    if (o.token !== null) headers.authorization = `Bearer ${o.token ?? TOKEN}`
    if (o.digest !== false) headers['content-digest'] = digestHeader(sha256Hex(body))
    if (o.meta) headers['reelcdn-meta'] = JSON.stringify(o.meta)
    const res = await request(`${this.url}/v1/content/${id}`, { method: 'PUT', body, headers })
    const text = await res.body.text()
    return { status: res.statusCode, json: JSON.parse(text) as Record<string, any> }
  }

  async get(path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
    const res = await request(`${this.url}${path}`, { method, headers })
    const body = Buffer.from(await res.body.arrayBuffer())
    return { status: res.statusCode, headers: res.headers, body }
  }

  async close(): Promise<void> {
    await this.router?.close()
    for (let i = 0; i < this.shards.length; i++) await this.stopShard(i)
  }
}

export function randomBody(n: number): Buffer {
  return randomBytes(n)
}

/** Every chunk replica the shards hold, as `shard:<sid>/<index>` strings. */
export function replicas(c: TestCluster): Set<string> {
  const out = new Set<string>()
  c.shards.forEach((s, i) => {
    if (!s) return
    for (let rows = s.index.page('', -1, 100000), j = 0; j < rows.length; j++) out.add(`shard-${i + 1}:${rows[j]!.contentId}/${rows[j]!.index}`)
  })
  return out
}

export { until } from '../helpers/until.js'
