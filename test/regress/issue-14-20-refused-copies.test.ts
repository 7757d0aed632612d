import t from 'tap'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody } from '../system/harness.js'
import { chunkKey, storageId } from '../../router/cluster/keys.js'
import type { RepairReport } from '../../router/repair/repair-report.js'

/**
 * Issue 14, item 20: the router kept sending reads to a copy its shard had
 * already reported corrupt (40 reads, 40 refusals, each an extra round trip).
 * Now the refusal is remembered for that copy, which is asked last until a
 * repair puts it back (or router.refusedCopies.ttlMs passes, for a repair by
 * another process), and the memory is counted in metrics.
 */
const CS = 65536

async function metric(c: TestCluster, prefix: string): Promise<number> {
  const text = (await c.get('/metrics')).body.toString()
  let sum = 0
  for (const line of text.split('\n')) if (line.startsWith(prefix)) sum += Number(line.split(' ').pop())
  return sum
}

t.test('a copy its shard reports corrupt is asked once, not on every read, until a repair puts it back', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(CS)
  const ing = await c.ingest('film', body)
  const sid = storageId('film', ing.json.version)
  // with no load anywhere the owners are asked in ring order: the first one's copy goes bad
  const first = c.router.cluster.readOrder(chunkKey(sid, 0))[0]!.id
  c.shards[Number(first.split('-')[1]) - 1]!.index.setState(sid, 0, 'corrupt')
  const asked = (result: string) => metric(c, `reelcdn_router_upstream_requests_total{shard="${first}",op="get_chunk",result="${result}"`)

  let exact = 0
  for (let i = 0; i < 40; i++) if ((await c.get('/v1/content/film')).body.equals(body)) exact++
  t.equal(exact, 40, 'every read is byte-exact')
  t.equal(await asked('5xx'), 1, `${first}, which refused the corrupt copy, was asked for it once in 40 reads`)
  t.equal(await metric(c, 'reelcdn_router_refused_copies_total{event="noted"'), 1, 'the refusal was remembered')
  t.ok(await metric(c, 'reelcdn_router_refused_copies_total{event="avoided"') >= 39, 'and the copy asked last on the reads after it')
  t.equal(await metric(c, 'reelcdn_router_refused_copies{'), 1, 'one copy remembered')

  // a repair by this router replaces the copy: it is read from again
  const res = await request(`${c.url}/v1/cluster/repair`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  const report = await res.body.json() as RepairReport
  t.equal(report.chunks.replaced, 1, 'the repair replaced the corrupt copy')
  t.equal(await metric(c, 'reelcdn_router_refused_copies{'), 0, 'and the router forgot the refusal')
  t.equal(await metric(c, 'reelcdn_router_refused_copies_total{event="cleared"'), 1)
  const before = await asked('2xx')
  t.ok((await c.get('/v1/content/film')).body.equals(body))
  t.equal(await asked('2xx'), before + 1, `${first} serves the repaired copy`)
})
