import t, { type Test } from 'tap'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until } from '../helpers/edge.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { spawnEdge, watchLog, type EdgeProcess } from '../helpers/edge-process.js'
import { rangePlayers } from '../helpers/range-players.js'

/**
 * Reloading a running edge (lib/reload.ts, edge/run/reload-table.ts): a real
 * `reelcdn edge -c FILE` process gets SIGHUP (and POST /admin/reload) after
 * its config file changed, under a bounded load of range reads whose every
 * byte is checked.
 */
const CS = 256 * 1024
const CHUNKS = 16
const ADMIN = 'admin-token-for-reload-tests'

interface LogLine { msg?: string; level?: number; applied?: string[]; restartNeeded?: string[]; err?: string }

const logs = (p: EdgeProcess) => watchLog<LogLine>(p.child)

async function edgeWithFile(t: Test, up: FakeUpstream, file: object) {
  const dir = t.testdir({ 'edge.json': JSON.stringify(file) })
  const cfg = join(dir, 'edge.json')
  const p = await spawnEdge(t, ['-c', cfg, '--upstream', up.url, '--data-dir', join(dir, 'data'), '--readahead', '0'],
    { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  return { p, cfg, log: logs(p) }
}

const base = { edge: { ramBytes: 2 * 1024 ** 2, diskBytes: 4 * 1024 ** 2, prefill: { window: 'never' } } }

// one edge process for the two SIGHUP/endpoint tests (starting `node dist/cli.js` costs seconds on a busy machine)
const up = await FakeUpstream.start()
t.teardown(() => up.close())
const bytes = titleBytes(CHUNKS * CS, 'reload')
await up.addTitle('r1', bytes, { chunkSize: CS })
const running = await edgeWithFile(t, up, base)
const shrunk = { edge: { ramBytes: 512 * 1024, diskBytes: 1024 ** 2, prefill: { window: '01:00-02:00', rateMBps: 5 } } }

t.test('SIGHUP shrinks both tiers and changes the prefill window under player load: no request fails, every byte checks', async t => {
  const { p, cfg, log } = running
  const whole = await get(`${p.url}/v1/content/r1`)
  t.ok(whole.status === 200 && whole.body.equals(bytes), 'warmed: the whole title once')
  await until(async () => (await metric(p.url, 'reelcdn_edge_tier_chunks', { tier: 'disk' })) === CHUNKS, 'every chunk on disk')

  const players = rangePlayers(() => `${p.url}/v1/content/r1`, bytes, { players: 4, maxRequests: 600, rangeBytes: 200 * 1024 })
  await players.progressed(40)
  writeFileSync(cfg, JSON.stringify(shrunk))
  const reloaded = log.next('config reloaded')
  p.child.kill('SIGHUP')
  const line = await reloaded
  t.same(line.applied?.sort(), ['edge.diskBytes', 'edge.prefill', 'edge.ramBytes'], 'the log names what was applied')
  t.same(line.restartNeeded, [], 'nothing needs a restart')
  await players.progressed(80)
  await players.stop()
  t.same(players.failures, [], `no player request failed (${players.done} reads across the reload)`)
  t.equal(await metric(p.url, 'reelcdn_edge_tier_capacity_bytes', { tier: 'ram' }), 512 * 1024)
  t.equal(await metric(p.url, 'reelcdn_edge_tier_capacity_bytes', { tier: 'disk' }), 1024 ** 2)
  t.ok(await metric(p.url, 'reelcdn_edge_tier_bytes', { tier: 'ram' }) <= 512 * 1024, 'the RAM tier is within its new size')
  t.ok(await metric(p.url, 'reelcdn_edge_tier_bytes', { tier: 'disk' }) <= 1024 ** 2, 'the disk tier is within its new size')
  t.equal(p.child.exitCode, null, 'still running')
})

t.test('then an invalid config keeps the running one and says why: SIGHUP logs it, the endpoint answers 400; no token, 401', async t => {
  const { p, cfg, log } = running
  writeFileSync(cfg, JSON.stringify({ edge: { ramBytes: -1, prefill: { window: '25:00-02:00' } } }))
  const refused = log.next('reload refused')
  p.child.kill('SIGHUP')
  const line = await refused
  t.equal(line.level, 40, 'logged at warn')
  t.match(line.err, /edge\.ramBytes/, 'naming the bad setting')
  t.match(line.err, /edge\.prefill\.window/, 'and the other one')
  t.equal(await metric(p.url, 'reelcdn_edge_tier_capacity_bytes', { tier: 'ram' }), 512 * 1024, 'the running size stays')
  t.equal(await metric(p.url, 'reelcdn_edge_tier_capacity_bytes', { tier: 'disk' }), 1024 ** 2)

  const post = (auth?: string) => request(`${p.url}/admin/reload`, { method: 'POST', headers: auth ? { authorization: `Bearer ${auth}` } : {} })
  const none = await post()
  t.equal(none.statusCode, 401, 'no token: 401')
  await none.body.dump()
  const wrong = await post('not-the-token')
  t.equal(wrong.statusCode, 401, 'a wrong token: 401')
  await wrong.body.dump()
  const bad = await post(ADMIN)
  const body = await bad.body.json() as { errors: string[]; applied: string[] }
  t.equal(bad.statusCode, 400)
  t.ok(body.errors.some(e => /edge\.ramBytes/.test(e)), `the reasons: ${body.errors.join('; ')}`)
  t.same(body.applied, [])

  // a valid file with a live change and one that needs a restart (log.level is a flag here: flags win over the file)
  writeFileSync(cfg, JSON.stringify({ edge: { ...shrunk.edge, prefill: { window: 'never', rateMBps: 7 }, maxFills: 3 } }))
  const ok = await post(ADMIN)
  const res = await ok.body.json() as { applied: string[]; restartNeeded: string[] }
  t.equal(ok.statusCode, 200)
  t.same(res.applied, ['edge.prefill'])
  t.same(res.restartNeeded, ['edge.maxFills'], 'names the setting that needs a restart')
  // asked again, the pending restart is named again (the running value stays the effective one)
  const again = await (await post(ADMIN)).body.json() as { applied: string[]; restartNeeded: string[] }
  t.same(again, { ok: true, refused: false, applied: [], restartNeeded: ['edge.maxFills'], errors: [] })
})

t.test('in process: the prefill runs with the new window and rate, and a token key rotation verifies with the new keys only', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(2 * CS, 'keys')
  await up.addTitle('k1', bytes, { chunkSize: CS })
  const dir = t.testdir({ 'keys': 'old:0123456789abcdef0123' })
  chmodSync(join(dir, 'keys'), 0o600)
  let next: Record<string, string | number> = {}
  const edge = await startTestEdge(t, up, { 'edge.requireToken': true, 'edge.tokenKeysFile': join(dir, 'keys') }, {}, undefined,
    o => ({ ...o, ...next }))
  const token = (secret: string, kid: string) => signToken(KeyRing.parse(`${kid}:${secret}`), { cid: 'k1', exp: Math.floor(Date.now() / 1000) + 60 })
  const oldToken = token('0123456789abcdef0123', 'old')
  t.equal((await get(`${edge.url}/v1/content/k1?token=${oldToken}`)).status, 200, 'the old key verifies before')
  writeFileSync(join(dir, 'keys'), 'new:fedcba9876543210fedc')
  next = { 'edge.prefill.window': '03:00-04:00', 'edge.prefill.rateMBps': 9 }
  const r = await edge.reload('admin')
  t.same(r.applied.sort(), ['edge.prefill', 'edge.tokenKeysFile (keys)'])
  t.same(edge.prefill.settings, { window: '03:00-04:00', rateMBps: 9, budgetBytes: edge.prefill.settings.budgetBytes })
  t.equal((await get(`${edge.url}/v1/content/k1?token=${oldToken}`)).status, 403, 'a token of the removed key is refused, even one verified before')
  t.equal((await get(`${edge.url}/v1/content/k1?token=${token('fedcba9876543210fedc', 'new')}`)).status, 200, 'the new key verifies')
  writeFileSync(join(dir, 'keys'), 'bad')
  const bad = await edge.reload('admin')
  t.ok(bad.refused && bad.errors.some(e => /token keys/.test(e)), `an unreadable key file refuses the reload: ${bad.errors.join('; ')}`)
  t.equal((await get(`${edge.url}/v1/content/k1?token=${token('fedcba9876543210fedc', 'new')}`)).status, 200, 'the running keys stay')
})

t.test('in process: a new edge.upstream takes the next fills, a title only the new router has is served', async t => {
  const a = await FakeUpstream.start()
  const b = await FakeUpstream.start()
  t.teardown(() => Promise.all([a.close(), b.close()]))
  const one = titleBytes(CS, 'on-a')
  const two = titleBytes(CS, 'on-b')
  await a.addTitle('a1', one, { chunkSize: CS })
  await b.addTitle('b1', two, { chunkSize: CS })
  let upstream = a.url
  const edge = await startTestEdge(t, a, {}, {}, undefined, o => ({ ...o, 'edge.upstream': upstream }))
  t.ok((await get(`${edge.url}/v1/content/a1`)).body.equals(one), 'served from the first router')
  upstream = b.url
  t.same((await edge.reload('admin')).applied, ['edge.upstream'])
  t.ok((await get(`${edge.url}/v1/content/b1`)).body.equals(two), 'a title of the new router is filled from it')
  t.equal(b.requests('b1'), 1)
  t.ok((await get(`${edge.url}/v1/content/a1`)).body.equals(one), 'what the edge holds is still served')
  // the watch page asks the router's /v1/play at edge.upstream (edge.playApiUrl is empty): the new one
  const page = (await get(`${edge.url}/watch/b1`)).body.toString('utf8')
  t.match(page, `&#34;playApi&#34;:&#34;${b.url}&#34;`, 'the watch page asks the new router')
  t.notMatch(page, a.url, 'not the old one')
})
