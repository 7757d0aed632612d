import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { HealthMonitor } from './health.js'
import { ShardClient } from './shard-client.js'
import { newRegistry, routerMetrics } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { loadConfig } from '../../lib/config/config.js'

/** A fake shard whose /v1/status answers 200 or 500 as the test says. */
async function fakeShard(t: { teardown(fn: () => unknown): void }) {
  const state = { ok: true }
  const server = http.createServer((req, res) => {
    if (!state.ok) return void res.writeHead(500).end('{}')
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ chunks: { ok: 3, corrupt: 0 }, storedBytes: 10, disk: { capacityBytes: 100, freeBytes: 50, reserveBytes: 0 } }))
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  return { state, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

t.test('hysteresis: down after `fall` failed checks, up after `rise` good ones', async t => {
  const f = await fakeShard(t)
  const up = loadConfig({ env: {} }).router.upstream
  const shard = new ShardClient({ id: 's1', url: f.url, weight: 1 }, up, routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }))
  t.teardown(() => shard.close())
  const h = new HealthMonitor([shard], { intervalMs: 1000, timeoutMs: 500, fall: 3, rise: 2 }, quietLogger('t'))
  await h.checkAll()
  t.ok(h.isUp('s1'))
  t.same(h.get('s1').status?.chunks, { ok: 3, corrupt: 0 }, 'usage is kept from the check')
  f.state.ok = false
  await h.checkAll()
  await h.checkAll()
  t.ok(h.isUp('s1'), 'two failures are not enough')
  await h.checkAll()
  t.notOk(h.isUp('s1'), 'the third marks it down')
  t.match(h.get('s1').lastError, /500/)
  f.state.ok = true
  await h.checkAll()
  t.notOk(h.isUp('s1'), 'one success is not enough')
  f.state.ok = false
  await h.checkAll()
  f.state.ok = true
  await h.checkAll()
  t.notOk(h.isUp('s1'), 'a failure in between restarts the count')
  await h.checkAll()
  t.ok(h.isUp('s1'), 'two in a row bring it back')
})

t.test('a shard that refuses connections is marked down', async t => {
  const up = loadConfig({ env: {} }).router.upstream
  const shard = new ShardClient({ id: 's2', url: 'http://127.0.0.1:1', weight: 1 }, up, routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }))
  t.teardown(() => shard.close())
  const h = new HealthMonitor([shard], { intervalMs: 1000, timeoutMs: 500, fall: 1, rise: 1 }, quietLogger('t'))
  await h.checkAll()
  t.notOk(h.isUp('s2'))
  t.match(h.get('s2').lastError, /ECONNREFUSED/)
})
