import t from 'tap'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { loadConfig } from '../../lib/config/config.js'
import { createLogger } from '../../lib/logger.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { startOrigin } from '../../origin/main.js'
import { startRouter } from '../../router/main.js'
import { startEdge } from '../../edge/main.js'
import { members } from '../../tools/cluster.js'
import type { Route } from '../../lib/http/http.js'
import { logSink, sha256 } from '../helpers/origin.js'

/**
 * Issue 14, item 10: a shard started without a token took PUT and DELETE from
 * anyone (an unauthenticated DELETE removed a replica), with no warning, and
 * `make run`'s cluster gave its shards no token. A missing secret must close
 * every route that writes or deletes, on every service, unless a flag says
 * otherwise; reads of a shard without a token stay open (docs/security.md).
 */
const body = Buffer.from('a chunk a shard must not lose to a stranger')

function shardConfig(dataDir: string, extra: Record<string, unknown> = {}) {
  return loadConfig({ env: {}, overrides: { 'origin.port': 0, 'origin.dataDir': dataDir, 'origin.reserveBytes': 0,
    'origin.scrubRateMBps': 0, ...extra } as never })
}

async function call(url: string, method: string, headers: Record<string, string> = {}, b?: Buffer | string) {
  const res = await request(url, { method: method as 'GET', headers, ...(b === undefined ? {} : { body: b }) })
  const text = await res.body.text()
  return { status: res.statusCode, text }
}

t.test('a shard without a token refuses writes and deletes, serves reads, and warns at start', async t => {
  const dir = t.testdir()
  // a replica stored while the shard had its token
  const first = await startOrigin(shardConfig(dir), { env: { REELCDN_SHARD_TOKEN: 'the-shard-token' } })
  const put = await call(`${first.url}/v1/chunks/movie-1.0123456789abcdef/0`, 'PUT',
    { authorization: 'Bearer the-shard-token', 'content-digest': digestHeader(sha256(body)) }, body)
  t.equal(put.status, 201)
  await first.close()

  // restarted with the token forgotten
  const sink = logSink()
  const s = await startOrigin(shardConfig(dir), { env: {}, logger: createLogger('origin', 'info', sink) })
  t.teardown(() => s.close())
  const chunk = `${s.url}/v1/chunks/movie-1.0123456789abcdef/0`
  const del = await call(chunk, 'DELETE')
  t.equal(del.status, 401, 'an unauthenticated DELETE is refused')
  t.match(del.text, /REELCDN_SHARD_TOKEN/, 'naming what to set')
  const other = Buffer.from('other bytes')
  t.equal((await call(`${s.url}/v1/chunks/movie-2.0123456789abcdef/0`, 'PUT', { 'content-digest': digestHeader(sha256(other)) }, other)).status, 401, 'a PUT too')
  t.equal((await call(`${s.url}/v1/manifests/movie-1`, 'PUT', { 'content-type': 'application/json' }, '{}')).status, 401, 'a manifest PUT too')
  t.equal((await call(`${s.url}/v1/manifests/movie-1`, 'DELETE')).status, 401, 'a manifest DELETE too')
  const got = await request(chunk)
  t.equal(got.statusCode, 200, 'the replica is still there, and reads stay open')
  t.same(Buffer.from(await got.body.arrayBuffer()), body)
  t.equal((await call(`${s.url}/v1/chunks?limit=10`, 'GET')).status, 200)
  t.ok(sink.lines.some(l => l.level === 40 && /no shard token/.test(l.msg) && /refused/.test(l.msg)), 'the start-up log warns that writes are refused')
})

t.test('--insecure-open-writes opens them, with a warning', async t => {
  const sink = logSink()
  const s = await startOrigin(shardConfig(t.testdir(), { 'origin.insecureOpenWrites': true }), { env: {}, logger: createLogger('origin', 'info', sink) })
  t.teardown(() => s.close())
  const put = await call(`${s.url}/v1/chunks/movie-1.0123456789abcdef/0`, 'PUT', { 'content-digest': digestHeader(sha256(body)) }, body)
  t.equal(put.status, 201)
  t.equal((await call(`${s.url}/v1/chunks/movie-1.0123456789abcdef/0`, 'DELETE')).status, 204)
  t.ok(sink.lines.some(l => l.level === 40 && /anyone/.test(l.msg)), 'the start-up log warns that anyone may write')
})

t.test('a token, once set, guards writes with or without the flag', async t => {
  const s = await startOrigin(shardConfig(t.testdir(), { 'origin.insecureOpenWrites': true }), { env: { REELCDN_SHARD_TOKEN: 'tok' } })
  t.teardown(() => s.close())
  t.equal((await call(`${s.url}/v1/chunks/a/0`, 'PUT', { 'content-digest': digestHeader(sha256(body)) }, body)).status, 401)
  t.equal((await call(`${s.url}/v1/chunks/a/0`, 'GET')).status, 401, 'and reads')
})

t.test('the cluster gives its shards and its router one generated shard token', async t => {
  const dir = t.testdir()
  await members(loadConfig({ env: {}, overrides: { 'local.dataDir': dir } }), {})
  const file = join(dir, 'shard-token')
  t.match(readFileSync(file, 'utf8').trim(), /^[0-9a-f]{48}$/)
  t.equal(statSync(file).mode & 0o777, 0o600)
})

/** Every route of a service, with its methods, as the service declared them. */
function routesOf(http: unknown): Route[] {
  return (http as { opts: { routes: Route[] } }).opts.routes
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS'])

t.test('every route that writes or deletes, on every service, is closed when its secret is missing', async t => {
  const dir = t.testdir()
  const config = loadConfig({ env: {}, overrides: {
    'log.level': 'silent', 'origin.port': 0, 'origin.dataDir': join(dir, 'shard'), 'origin.reserveBytes': 0, 'origin.scrubRateMBps': 0,
    'router.port': 0, 'router.dataDir': join(dir, 'router'), 'router.repair.intervalMs': 0, 'router.health.intervalMs': 3600_000,
    'edge.port': 0, 'edge.dataDir': join(dir, 'edge'), 'edge.heartbeatMs': 0, 'edge.demandReportMs': 0, 'edge.prefill.window': 'never',
  } as never })
  const shard = await startOrigin(config, { env: {} })
  t.teardown(() => shard.close())
  const router = await startRouter({ ...config, cluster: { ...config.cluster, copies: 1, shards: [{ id: 'shard-1', url: shard.url, weight: 1 }] } }, { env: {} })
  t.teardown(() => router.close())
  const edge = await startEdge({ ...config, edge: { ...config.edge, upstream: router.url } }, { env: {} })
  t.teardown(() => edge.close())
  let checked = 0
  for (const [name, svc] of [['shard', shard], ['router', router], ['edge', edge]] as const) {
    for (const r of routesOf(svc.server.http)) {
      for (const method of Object.keys(r.methods)) {
        if (READS.has(method)) continue
        const path = r.path.replace(':id', 'movie-1').replace(':index', '0')
        const res = await call(`${svc.url}${path}`, method, { 'content-type': 'application/json' }, method === 'DELETE' ? undefined : '{}')
        t.ok([401, 403, 503].includes(res.status), `${name} ${method} ${r.path}: ${res.status} ${res.text.slice(0, 120)}`)
        checked++
      }
    }
  }
  t.ok(checked >= 12, `${checked} routes that write or delete checked`)
})
