import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody } from '../system/harness.js'
import { CLI } from '../helpers/spawn.js'
import { startRouter } from '../../router/main.js'
import { quietLogger } from '../../lib/logger.js'

/**
 * Issue 14, item 18: /v1/cluster showed `replicas: null` until the router
 * itself ran a repair pass; a pass run by `reelcdn router repair` did not
 * fill it in. Every pass now leaves its report on the shards it reached, and
 * each router reads it back from the shards' status on its health checks: so
 * every router, a restarted one too, shows the newest pass, whoever ran it.
 */
const CS = 65536

async function view(url: string) {
  return JSON.parse((await request(`${url}/v1/cluster`).then(r => r.body.text()))) as {
    replicas: { underReplicated: number; lost: number; ranBy: string | null; dryRun: boolean } | null
  }
}

async function replicaGauge(url: string, kind: string): Promise<number | undefined> {
  const text = await request(`${url}/metrics`).then(r => r.body.text())
  const line = text.split('\n').find(l => l.startsWith(`reelcdn_router_replica_problems{kind="${kind}"`))
  return line === undefined ? undefined : Number(line.split(' ').pop())
}

t.test('a pass run by `reelcdn router repair` shows in every router\'s /v1/cluster and replica metrics', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  t.equal((await c.ingest('film', randomBody(3 * CS))).status, 201)
  // a second router over the same shards, which runs no pass of its own either
  const other = await startRouter(c.config(3, { 'router.dataDir': join(c.dir, 'router-2') }), { logger: quietLogger('router-2'),
    env: { REELCDN_ROUTER_TOKEN: TOKEN } })
  t.teardown(() => other.close())
  t.equal((await view(c.url)).replicas, null, 'no pass yet: null')

  // a shard loses its copies; the operator runs a dry run from the command line
  await c.stopShard(1)
  await c.startShard(1, { wipe: true })
  const cfg = join(c.dir, 'repair.json')
  await writeFile(cfg, JSON.stringify({ cluster: c.config().cluster, log: { level: 'warn' } }))
  const run = (args: string[]) => new Promise<number>(resolve => execFile(process.execPath, [CLI, 'router', 'repair', '-c', cfg, ...args],
    { env: { ...process.env, REELCDN_SHARD_TOKEN: '' } }, err => resolve(err ? Number(err.code) : 0)))
  t.equal(await run(['--dry-run']), 2, 'the dry run finds copies missing')
  for (const r of [c.router, other]) await r.cluster.health.checkAll()
  for (const url of [c.url, other.url]) {
    const v = await view(url)
    t.equal(v.replicas?.underReplicated, 3, `${url === c.url ? 'the router' : 'another router'} shows the CLI's count`)
    t.equal(v.replicas?.ranBy, 'reelcdn router repair', 'and what ran the pass (its machine only with the admin token: issue-14-18-ranby-hostname)')
    t.equal(v.replicas?.dryRun, true)
    t.equal(await replicaGauge(url, 'under_replicated'), 3, 'in its metrics too')
  }

  // the repair itself, then a router restarted since: both see the copies back
  t.equal(await run(['--rate', '0']), 0, 'the repair leaves nothing under-replicated')
  await c.startRouter()
  await other.cluster.health.checkAll()
  for (const url of [c.url, other.url]) {
    const v = await view(url)
    t.equal(v.replicas?.underReplicated, 0, `${url === c.url ? 'the restarted router' : 'the other router'}: nothing under-replicated`)
    t.equal(v.replicas?.dryRun, false)
    t.equal(await replicaGauge(url, 'under_replicated'), 0)
  }
})
