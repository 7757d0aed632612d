import t from 'tap'
import { writeFileSync, statfsSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody, replicas, until } from './harness.js'
import { startOrigin } from '../../origin/main.js'
import { quietLogger } from '../../lib/logger.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { sha256Hex } from '../../router/cluster/keys.js'
import { spawnCli, exited } from '../helpers/spawn.js'

/**
 * Ingests that meet faults. A router process killed (-9) in the middle of an
 * upload: the title never becomes visible, and running the ingest again
 * completes it, reusing the chunks already stored. A shard whose disk is
 * "full" (its configured reserve cannot be met): 507 naming the shard and the
 * reserve, no partial title, other titles unaffected.
 */
const CS = 65536

t.test('router killed mid-ingest: the title stays invisible; the ingest run again completes it', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const cfg = join(c.dir, 'router.json')
  writeFileSync(cfg, JSON.stringify({ cluster: { chunkSize: CS, copies: 3,
    shards: c.ports.map((p, i) => ({ id: `shard-${i + 1}`, url: `http://127.0.0.1:${p}`, weight: 1 })) }, router: { dataDir: join(c.dir, 'router-proc') } }))
  const env = { REELCDN_ROUTER_TOKEN: TOKEN }
  const args = ['router', '--config', cfg, '--port', '0', '--repair-interval', '0']
  const first = await spawnCli(t, args, 'router ready', env)
  const url = String(first.line.url)
  const body = randomBody(20 * CS)
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-digest': digestHeader(sha256Hex(body)) }

  // the upload sends 8 chunks' worth, then waits (forever) for the rest
  let stall!: () => void
  const stalled = new Promise<void>(r => { stall = r })
  async function* slowBody() {
    yield body.subarray(0, 8 * CS)
    await stalled
  }
  const upload = request(`${url}/v1/content/cut`, { method: 'PUT', body: Readable.from(slowBody()), headers }).then(r => r.statusCode, (e: Error) => e)
  await until(() => [...replicas(c)].filter(r => r.includes(':cut.')).length >= 3 * 4, 'some chunks of the upload stored on the shards')
  first.child.kill('SIGKILL')
  await exited(first.child)
  stall()
  t.ok(await upload instanceof Error, 'the uploader sees the connection cut')
  const stored = [...replicas(c)].filter(r => r.includes(':cut.')).length
  t.ok(stored > 0, `${stored} chunk replicas stored before the kill`)

  const second = await spawnCli(t, args, 'router ready', env)
  const url2 = String(second.line.url)
  const get = (p: string) => request(`${url2}${p}`).then(async r => ({ status: r.statusCode, body: Buffer.from(await r.body.arrayBuffer()) }))
  t.equal((await get('/v1/content/cut')).status, 404, 'the cut title is invisible')
  t.equal((await get('/v1/content/cut/meta')).status, 404, 'no manifest')
  t.notMatch((await get('/v1/content?q=cut')).body.toString(), /"cut"/, 'not in the catalog')

  const again = await request(`${url2}/v1/content/cut`, { method: 'PUT', body, headers })
  const json = await again.body.json() as { replicas: { stored: number; resumed: number } }
  t.equal(again.statusCode, 201, 'the ingest run again completes')
  t.ok(json.replicas.resumed >= stored - 3, `it reused the replicas already stored (${JSON.stringify(json.replicas)})`)
  const whole = await get('/v1/content/cut')
  t.ok(whole.status === 200 && whole.body.equals(body), 'and the title reads byte-exact')
  second.child.kill('SIGTERM')
  await exited(second.child)
})

t.test('a shard whose disk is full: 507 with a clear message, no partial title, others unaffected', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const before = randomBody(3 * CS + 7)
  t.equal((await c.ingest('before', before)).status, 201)
  // shard-2 comes back with a reserve larger than its free space: every chunk write would eat into it
  await c.stopShard(1)
  const free = statfsSync(c.shardDir(1))
  const base = c.config()
  c.shards[1] = await startOrigin({ ...base, origin: { ...base.origin, port: c.ports[1]!, dataDir: c.shardDir(1),
    reserveBytes: free.bavail * free.bsize + 1024 ** 3 } }, { logger: quietLogger('origin-2'), env: {} })
  await c.router.cluster.health.checkAll()

  const refused = await c.ingest('full', randomBody(5 * CS))
  t.equal(refused.status, 507, 'the ingest fails with 507')
  t.match(refused.json.error, { code: 'CDN_ERR_NO_SPACE', message: /shard-2 is full.*reserve/ }, `names the shard and the reserve: ${refused.json.error?.message}`)
  t.equal((await c.get('/v1/content/full')).status, 404, 'no partial title')
  t.equal((await c.get('/v1/content/full/meta')).status, 404)
  const r = await c.get('/v1/content/before')
  t.ok(r.status === 200 && r.body.equals(before), 'the title stored before still reads byte-exact')
  t.equal((await c.get('/v1/content/before', { range: 'bytes=65530-65545' })).body.length, 16)
})
