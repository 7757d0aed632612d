import t from 'tap'
import { utimesSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { RepairRecord } from './repair-record.js'
import { startOrigin } from './main.js'
import { originConfig, startTestOrigin } from '../test/helpers/origin.js'
import { quietLogger } from '../lib/logger.js'

const report = (finishedAt: number, underReplicated = 0) => ({ startedAt: finishedAt - 10, finishedAt, dryRun: false,
  remaining: { underReplicated, lost: 0, misplaced: 0, misplacedManifests: 0, orphans: 0 } })

t.test('the report that arrives last is kept, stamped with its arrival, and it survives a restart', async t => {
  const dir = t.testdir()
  const r = new RepairRecord(dir)
  t.equal(r.get(), null)
  t.equal(r.ageMs(), undefined)
  t.equal(await r.put(report(2000, 5), 10_000), true)
  t.equal(await r.put(report(1000, 9), 11_000), true, 'a pass that says it ended earlier, arriving later, replaces it: its clock is not ours')
  t.same(r.get(), { ...report(1000, 9), receivedAt: 11_000 })
  t.equal(r.ageMs(11_500), 500, 'its age by this clock')
  const [a, b] = await Promise.all([r.put(report(3000, 1), 12_000), r.put(report(4000, 0), 13_000)])
  t.ok(a && b, 'writes in order of arrival')
  t.same(new RepairRecord(dir).get(), { ...report(4000, 0), receivedAt: 13_000 }, 'read back at start')
  await t.rejects(r.put(report(13_000 + 61_000, 0), 13_000), { code: 'CDN_ERR_BAD_REPORT', message: /61 s ahead of this shard's clock/ }, 'a clock more than a minute ahead')
  t.equal(await r.put(report(13_000 + 59_000, 0), 13_000), true, 'within a minute: skew')
  await t.rejects(r.put({ finishedAt: 'soon' }), { code: 'CDN_ERR_BAD_REPORT' })
  await t.rejects(r.put([1]), { code: 'CDN_ERR_BAD_REPORT' })
})

t.test('a report kept before reports were stamped arrived when its file was written', async t => {
  const dir = t.testdir({ 'repair-report.json': JSON.stringify(report(Date.now() + 3600_000, 0)) })
  const at = Date.now() - 5000
  utimesSync(join(dir, 'repair-report.json'), at / 1000, at / 1000)
  const age = new RepairRecord(dir).ageMs()!
  t.ok(age >= 4000 && age < 60_000, `aged from the file's mtime, not its finishedAt an hour ahead (${age} ms)`)
})

t.test('PUT /v1/repair-report is a write (shard token), and /v1/status carries the report', async t => {
  const open = await startTestOrigin(t)
  const put = (base: string, body: unknown, headers: Record<string, string> = {}) => request(`${base}/v1/repair-report`,
    { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } }).then(async r => ({ status: r.statusCode, json: await r.body.json() as Record<string, unknown> }))
  t.same((await put(open.url, report(5000, 2))).json, { kept: true })
  const status = await request(`${open.url}/v1/status`).then(r => r.body.json()) as { lastRepair: unknown }
  t.match(status.lastRepair, report(5000, 2))
  t.equal((await put(open.url, { nope: 1 })).status, 400)

  const closed = await startOrigin(originConfig(t.testdir(), { 'origin.insecureOpenWrites': false }), { logger: quietLogger('origin'), env: { REELCDN_SHARD_TOKEN: 'tok' } })
  t.teardown(() => closed.close())
  t.equal((await put(closed.url, report(1))).status, 401, 'without the token')
  t.equal((await put(closed.url, report(1), { authorization: 'Bearer tok' })).status, 200, 'with it')
})
