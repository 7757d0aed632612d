import t from 'tap'
import { request } from 'undici'
import { randomBody, TestCluster } from './harness.js'
import { get, metric, startTestEdge } from '../helpers/edge.js'
import { directCluster, GRANT_KEY, ownersOf, routerProxy } from '../helpers/direct-cluster.js'
import { fillGrantKey, signGrant } from '../../lib/security/fill-grant.js'
import { storageId } from '../../router/cluster/keys.js'

/**
 * Fill grants (lib/security/fill-grant.ts, router/read/fill-grants.ts): what a shard
 * refuses, what the router lists and caps, and that an edge given a bad
 * grant still serves the right bytes.
 */
const CHUNK = 65536

interface FillAnswer { sid: string; expiresAt: number; chunks: { index: number; size: number; sha256: string; sources: { shardId: string; url: string; grant: string }[] }[] }

async function fillAnswer(c: TestCluster, path: string, headers: Record<string, string> = {}) {
  const res = await request(`${c.url}${path}`, { headers })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, json: JSON.parse(text) as FillAnswer & { error?: { code: string; message: string } } }
}

async function shardGet(c: TestCluster, i: number, path: string, auth: string, method: 'GET' | 'PUT' | 'DELETE' = 'GET') {
  const res = await request(`${c.shards[i]!.url}${path}`, { method, headers: { authorization: auth } })
  const text = await res.body.text()
  return { status: res.statusCode, code: res.statusCode >= 400 && text ? (JSON.parse(text) as { error?: { code: string } }).error?.code : undefined }
}

t.test('a shard refuses a grant that is forged, expired, for another chunk or for another shard, and takes it for nothing but reads', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const ing = await c.ingest('g', randomBody(2 * CHUNK))
  const sid = storageId('g', ing.json.version)
  const [a, b] = ownersOf(c, 'g', ing.json.version, 0)
  const id = (i: number) => `shard-${i + 1}`
  const exp = Math.floor(Date.now() / 1000) + 60
  const good = signGrant(GRANT_KEY, { sid, index: 0, shard: id(a!), exp, edge: 'e' })
  const path = `/v1/chunks/${sid}/0`
  t.equal((await shardGet(c, a!, path, `Grant ${good}`)).status, 200, 'its own grant: read')
  t.equal((await shardGet(c, a!, `${path}/crcs`, `Grant ${good}`)).status, 200, 'and the block list')
  t.same(await shardGet(c, a!, path, `Grant ${signGrant(fillGrantKey('guess'), { sid, index: 0, shard: id(a!), exp, edge: 'e' })}`),
    { status: 403, code: 'CDN_ERR_GRANT_INVALID' }, 'forged')
  t.same(await shardGet(c, a!, path, `Grant ${signGrant(GRANT_KEY, { sid, index: 0, shard: id(a!), exp: exp - 120, edge: 'e' })}`),
    { status: 403, code: 'CDN_ERR_GRANT_EXPIRED' }, 'expired')
  t.same(await shardGet(c, a!, `/v1/chunks/${sid}/1`, `Grant ${good}`), { status: 403, code: 'CDN_ERR_GRANT_INVALID' }, 'another chunk')
  t.same(await shardGet(c, b!, path, `Grant ${good}`), { status: 403, code: 'CDN_ERR_GRANT_INVALID' }, 'shard A\'s grant at shard B')
  t.equal((await shardGet(c, a!, path, `Grant ${good}`, 'DELETE')).status, 401, 'no delete')
  t.equal((await shardGet(c, a!, '/v1/chunks', `Grant ${good}`)).status, 401, 'no inventory')
  t.equal((await shardGet(c, a!, path, 'Grant garbage')).code, 'CDN_ERR_GRANT_INVALID', 'malformed')
  const m = (result: string) => metric(c.shards[a!]!.url, 'reelcdn_origin_fill_grants_total', { result })
  t.same([await m('ok'), await m('forged'), await m('expired'), await m('wrong_chunk'), await m('malformed')], [2, 1, 1, 1, 1], 'each counted')
  t.equal(await metric(c.shards[b!]!.url, 'reelcdn_origin_fill_grants_total', { result: 'wrong_shard' }), 1)
})

t.test('the router lists owners only, in read order, each with its own grant; caps an edge\'s rate; answers 503 without a key', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK, shards: 4, copies: 2, overrides: { 'router.fillGrants.perEdgeRatePerS': 0.05, 'router.fillGrants.perEdgeBurst': 4 } })
  const ing = await c.ingest('own', randomBody(3 * CHUNK))
  const r = await fillAnswer(c, '/v1/content/own/fill/0?count=3', { 'reelcdn-edge': 'e1' })
  t.equal(r.status, 200)
  t.equal(r.json.chunks.length, 3)
  for (const ch of r.json.chunks) {
    const owners = ownersOf(c, 'own', ing.json.version, ch.index).map(i => `shard-${i + 1}`)
    t.same(ch.sources.map(s => s.shardId).sort(), [...owners].sort(), `chunk ${ch.index}: its owners, no other shard`)
    for (const s of ch.sources) t.equal(s.url, c.router.cluster.shard(s.shardId).spec.url)
  }
  t.ok(r.json.expiresAt > Date.now() + 50_000, 'a minute to use them')
  t.equal((await fillAnswer(c, '/v1/content/own/fill/3')).status, 404, 'past the last chunk')
  t.equal((await fillAnswer(c, '/v1/content/own/fill/0?count=0')).status, 400, 'a count of 0')
  // e1 took 3 of its burst of 4: asking for two more, it gets the one left; then none
  const part = await fillAnswer(c, '/v1/content/own/fill/0?count=2', { 'reelcdn-edge': 'e1' })
  t.equal(part.status, 200)
  t.equal(part.json.chunks.length, 1, 'as many chunks as its bucket holds')
  const over = await fillAnswer(c, '/v1/content/own/fill/0?count=2', { 'reelcdn-edge': 'e1' })
  t.equal(over.status, 429)
  t.equal(over.json.error?.code, 'CDN_ERR_FILL_THROTTLED')
  t.ok(Number(over.headers['retry-after']) >= 1, 'Retry-After')
  t.equal((await fillAnswer(c, '/v1/content/own/fill/0?count=2', { 'reelcdn-edge': 'e2' })).status, 200, 'another edge has its own budget')
  t.equal(await metric(c.url, 'reelcdn_router_fill_grants_total', { result: 'throttled' }), 1)
  t.equal(await metric(c.url, 'reelcdn_router_fill_grants_total', { result: 'issued' }), 6)
  t.equal(await metric(c.url, 'reelcdn_router_fill_grants_total', { result: 'capped' }), 1, 'the chunk the partial answer left out')
  // over its rate, a question that also asks for the manifest gets the manifest alone: the rate limits grants, not manifests
  const manifestOnly = await request(`${c.url}/v1/content/own/fill/0?count=2&manifest=1`, { headers: { 'reelcdn-edge': 'e1' } })
  const mo = await manifestOnly.body.json() as FillAnswer & { manifest?: { contentId: string } }
  t.same([manifestOnly.statusCode, mo.chunks.length, mo.manifest?.contentId], [200, 0, 'own'], 'no 429: the manifest, no grants')
  t.equal(await metric(c.url, 'reelcdn_router_fill_grants_total', { result: 'manifest_only' }), 1)
  t.equal(await metric(c.url, 'reelcdn_router_fill_grants_total', { result: 'issued' }), 6, 'and no grant taken')

  const open = await TestCluster.start(t, { chunkSize: CHUNK })
  await open.ingest('o', randomBody(CHUNK))
  const off = await fillAnswer(open, '/v1/content/o/fill/0')
  t.equal(off.status, 503)
  t.equal(off.json.error?.code, 'CDN_ERR_FILL_GRANTS_DISABLED', 'no shard token, no key: no grants')
  // and an edge in front of it fills by the relay, having asked once
  const edge = await startTestEdge(t, { url: open.url, token: undefined })
  await open.ingest('o2', randomBody(CHUNK))
  t.equal((await get(`${edge.url}/v1/content/o`)).status, 200)
  t.equal((await get(`${edge.url}/v1/content/o2`)).status, 200)
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_grant_requests_total', { result: 'refused' }), 1, 'asked once, then held off')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 2 * CHUNK)
})

t.test('an expired grant: the shard refuses it, the edge asks the router again and reads direct', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(2 * CHUNK)
  await c.ingest('exp', body)
  const rp = await routerProxy(t, c.url)
  rp.mangle = n => n === 0 ? 'expire' : undefined
  const edge = await startTestEdge(t, { url: rp.url, token: undefined }, { 'edge.readaheadChunks': 0 })
  const got = await get(`${edge.url}/v1/content/exp`, { range: `bytes=0-${CHUNK - 1}` })
  t.ok(got.body.equals(body.subarray(0, CHUNK)), 'right bytes')
  t.equal(rp.fills, 2, 'asked the router again')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }), CHUNK, 'then read direct')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0)
  let expired = 0
  for (const s of c.shards) expired += await metric(s!.url, 'reelcdn_origin_fill_grants_total', { result: 'expired' })
  t.ok(expired >= 1, 'the shards refused the expired grant')
})

t.test('a forged grant: every owner refuses it, the edge fills by the relay, the player gets the right bytes', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(CHUNK)
  await c.ingest('forged', body)
  const rp = await routerProxy(t, c.url)
  rp.mangle = () => 'forge'
  const edge = await startTestEdge(t, { url: rp.url, token: undefined }, { 'edge.readaheadChunks': 0 })
  const got = await get(`${edge.url}/v1/content/forged`)
  t.ok(got.body.equals(body), 'right bytes')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }), 0, 'no byte from a shard')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), CHUNK)
  t.ok(await metric(edge.url, 'reelcdn_edge_fill_failovers_total', { reason: 'grant' }) >= 3, 'each owner refused')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_relay_fallbacks_total', { reason: 'owners' }), 1)
  let forged = 0
  for (const s of c.shards) forged += await metric(s!.url, 'reelcdn_origin_fill_grants_total', { result: 'forged' })
  t.ok(forged >= 3, 'the shards refused and counted it')
})
