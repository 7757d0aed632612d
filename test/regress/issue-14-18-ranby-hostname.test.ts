import t from 'tap'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody } from '../system/harness.js'

/**
 * Issue 14, item 18 (review): the report of a pass run by `reelcdn router
 * repair` named the machine it ran on (`reelcdn router repair on <host>`),
 * and the router's /v1/cluster, which is open to anyone who reaches it, showed
 * that in `replicas.ranBy` and `repair.last`: an internal hostname, or an
 * operator's laptop, given to every client. Now a report says what ran the
 * pass in `ranBy` and the machine in `ranOn`, which /v1/cluster shows to the
 * admin token only; reports kept on shards from before are split the same way.
 */
const CS = 65536

async function cluster(url: string, token?: string) {
  const text = await request(`${url}/v1/cluster`, { headers: token ? { authorization: `Bearer ${token}` } : {} }).then(r => r.body.text())
  return { text, json: JSON.parse(text) as { replicas: Record<string, unknown> | null; repair: { last: Record<string, unknown> | null } } }
}

const report = (ranBy: string) => ({ startedAt: Date.now() - 1000, finishedAt: Date.now(), dryRun: true, ranBy, unreachable: [],
  remaining: { underReplicated: 0, lost: 0, misplaced: 0, misplacedManifests: 0, orphans: 0 } })

t.test('the public /v1/cluster never names the machine a pass ran on; the admin token sees it', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  t.equal((await c.ingest('film', randomBody(2 * CS))).status, 201)

  // a report left by the command line of before, naming its machine in ranBy
  for (const s of c.shards) {
    const r = await request(`${s!.url}/v1/repair-report`, { method: 'PUT', body: JSON.stringify(report('reelcdn router repair on ops-laptop.corp.example')),
      headers: { 'content-type': 'application/json' } })
    t.equal(r.statusCode, 200)
    await r.body.dump()
  }
  await c.router.cluster.health.checkAll()
  const open = await cluster(c.url)
  t.notMatch(open.text, /ops-laptop/, 'the open answer: no hostname anywhere')
  t.equal(open.json.replicas?.ranBy, 'reelcdn router repair', 'what ran it')
  t.equal(open.json.repair.last?.ranBy, 'reelcdn router repair')
  t.notOk('ranOn' in open.json.replicas!, 'no ranOn field')
  const admin = await cluster(c.url, TOKEN)
  t.equal(admin.json.replicas?.ranOn, 'ops-laptop.corp.example', 'the admin token sees the machine')
  t.equal(admin.json.repair.last?.ranOn, 'ops-laptop.corp.example')
  t.notMatch((await cluster(c.url, 'wrong-token')).text, /ops-laptop/, 'a wrong token sees the open answer')

  // the router's own pass: its hostname is in the report, not in the open answer
  c.router.repairer.ranOn = 'router-host.internal.example'
  await c.router.repairer.run({ dryRun: true })
  const own = await cluster(c.url)
  t.match(own.json.replicas?.ranBy, /^router /)
  t.notMatch(own.text, /router-host\.internal/, 'no hostname of the router\'s own pass either')
  t.equal((await cluster(c.url, TOKEN)).json.replicas?.ranOn, 'router-host.internal.example')
})
