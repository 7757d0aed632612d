import t from 'tap'
import { request } from 'undici'
import { RepairRecord } from './repair-record.js'
import { startOrigin } from './main.js'
import { originConfig, startTestOrigin } from '../test/helpers/origin.js'
import { quietLogger } from '../lib/logger.js'

const report = (finishedAt: number, underReplicated = 0) => ({ startedAt: finishedAt - 10, finishedAt, dryRun: false,
  remaining: { underReplicated, lost: 0, misplaced: 0, misplacedManifests: 0, orphans: 0 } })

t.test('the newest report is kept, an older one ignored, and it survives a restart', async t => {
  const dir = t.testdir()
  const r = new RepairRecord(dir)
  t.equal(r.get(), null)
  t.equal(await r.put(report(2000, 5)), true)
  t.equal(await r.put(report(1000, 9)), false, 'a pass that ended earlier does not replace it')
  const [a, b] = await Promise.all([r.put(report(3000, 1)), r.put(report(4000, 0))])
  t.ok(a && b, 'writes in order of arrival, both newer')
  t.same(new RepairRecord(dir).get(), report(4000, 0), 'read back at start')
  await t.rejects(r.put({ finishedAt: 'soon' }), { code: 'CDN_ERR_BAD_REPORT' })
  await t.rejects(r.put([1]), { code: 'CDN_ERR_BAD_REPORT' })
})

t.test('PUT /v1/repair-report is a write (shard token), and /v1/status carries the report', async t => {
  const open = await startTestOrigin(t)
  const put = (base: string, body: unknown, headers: Record<string, string> = {}) => request(`${base}/v1/repair-report`,
    { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } }).then(async r => ({ status: r.statusCode, json: await r.body.json() as Record<string, unknown> }))
  t.same((await put(open.url, report(5000, 2))).json, { kept: true })
  const status = await request(`${open.url}/v1/status`).then(r => r.body.json()) as { lastRepair: unknown }
  t.same(status.lastRepair, report(5000, 2))
  t.equal((await put(open.url, { nope: 1 })).status, 400)

  const closed = await startOrigin(originConfig(t.testdir(), { 'origin.insecureOpenWrites': false }), { logger: quietLogger('origin'), env: { REELCDN_SHARD_TOKEN: 'tok' } })
  t.teardown(() => closed.close())
  t.equal((await put(closed.url, report(1))).status, 401, 'without the token')
  t.equal((await put(closed.url, report(1), { authorization: 'Bearer tok' })).status, 200, 'with it')
})
