import t from 'tap'
import { join } from 'node:path'
import { request } from 'undici'
import { startRouter } from '../../router/main.js'
import { quietLogger } from '../../lib/logger.js'
import { TestCluster, TOKEN, randomBody } from '../system/harness.js'
import { startTestOrigin } from '../helpers/origin.js'

/**
 * Issue 14, item 18 (review): a pass's report was ordered by its own
 * `finishedAt`, the clock of the machine that ran it. A report from a machine
 * whose clock ran ahead (`reelcdn router repair` on an operator's laptop) then
 * beat every later pass, on every shard and every router, and /v1/cluster
 * showed its counts (nothing wrong, say) while routers found copies missing.
 * Now the shard stamps a report when it arrives, by its own clock, and keeps
 * the newest to arrive; a finishedAt more than a minute ahead of the shard's
 * clock is refused; and a router places the shards' reports on its own clock
 * (from their age) beside its own pass.
 */
const CS = 65536
const MIN = 60_000

const report = (finishedAt: number, underReplicated: number, ranBy = 'reelcdn router repair') => ({ startedAt: finishedAt - 1000, finishedAt,
  dryRun: false, ranBy, unreachable: [], remaining: { underReplicated, lost: 0, misplaced: 0, misplacedManifests: 0, orphans: 0 } })

async function putReport(base: string, body: unknown) {
  const r = await request(`${base}/v1/repair-report`, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  return { status: r.statusCode, json: await r.body.json() as Record<string, any> }
}

async function view(url: string) {
  return JSON.parse(await request(`${url}/v1/cluster`).then(r => r.body.text())) as { replicas: { underReplicated: number } | null }
}

t.test('a shard keeps the report that reached it last, and refuses one from a clock far ahead', async t => {
  const o = await startTestOrigin(t)
  const ahead = await putReport(o.url, report(Date.now() + 60 * MIN, 0))
  t.equal(ahead.status, 400, 'an hour ahead of the shard\'s clock: refused')
  t.match(ahead.json.error, { code: 'CDN_ERR_BAD_REPORT', message: /ahead of this shard's clock/ })
  t.same((await putReport(o.url, report(Date.now() + 30_000, 0))).json, { kept: true }, '30 s ahead: within the tolerance')
  t.same((await putReport(o.url, report(Date.now(), 4, 'router r1'))).json, { kept: true }, 'a later pass with an earlier finishedAt replaces it')
  const status = await request(`${o.url}/v1/status`).then(r => r.body.json()) as { lastRepair: Record<string, any>; lastRepairAgeMs: number }
  t.equal(status.lastRepair.ranBy, 'router r1')
  t.ok(typeof status.lastRepair.receivedAt === 'number', 'stamped on arrival')
  t.ok(status.lastRepairAgeMs >= 0 && status.lastRepairAgeMs < MIN, `its age by the shard's clock (${status.lastRepairAgeMs} ms)`)
})

t.test('a report from a clock ahead does not hide what later passes find, on any router', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  t.equal((await c.ingest('film', randomBody(3 * CS))).status, 201)
  const other = await startRouter(c.config(3, { 'router.dataDir': join(c.dir, 'router-2') }), { logger: quietLogger('router-2'),
    env: { REELCDN_ROUTER_TOKEN: TOKEN } })
  t.teardown(() => other.close())
  // an operator's pass, all well, from a laptop 50 s ahead (within the shards' tolerance)
  for (const s of c.shards) t.same((await putReport(s!.url, report(Date.now() + 50_000, 0))).json, { kept: true })
  // then a shard loses its copies, and the router's own dry run finds them missing
  await c.stopShard(1)
  await c.startShard(1, { wipe: true })
  const own = await c.router.repairer.run({ dryRun: true })
  t.equal(own.remaining.underReplicated, 3, 'the router\'s pass finds 3 chunks short')
  for (const r of [c.router, other]) await r.cluster.health.checkAll()
  t.equal((await view(c.url)).replicas?.underReplicated, 3, 'the router that ran it shows its own, newer by its clock')
  t.equal((await view(other.url)).replicas?.underReplicated, 3, 'another router shows it too, from the shards')
})
