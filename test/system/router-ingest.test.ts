import t from 'tap'
import { PassThrough } from 'node:stream'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody, replicas, until } from './harness.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { sha256Hex } from '../../router/cluster/keys.js'
import { ingestFile } from '../../router/ingest/ingest-cli.js'

/** create(K, V): admin-only, all-or-nothing, resumable, immutable once published. */
const CS = 65536

t.test('401 without the admin token, and with a wrong one', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const none = await c.ingest('x', randomBody(10), { token: null })
  t.equal(none.status, 401)
  t.equal(none.json.error.code, 'CDN_ERR_UNAUTHORIZED')
  t.equal((await c.ingest('x', randomBody(10), { token: 'wrong' })).status, 401)
  t.equal((await request(`${c.url}/v1/content/x`, { method: 'DELETE' })).statusCode, 401)
  t.equal((await request(`${c.url}/v1/cluster/repair`, { method: 'POST' })).statusCode, 401)
  t.equal((await c.get('/v1/content/x')).status, 404, 'nothing was stored')
  t.equal(replicas(c).size, 0)
})

t.test('a published title is immutable: another body is a 409, the same body a 200', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(3 * CS)
  t.equal((await c.ingest('film', body)).status, 201)
  const other = await c.ingest('film', randomBody(3 * CS))
  t.equal(other.status, 409)
  t.equal(other.json.error.code, 'CDN_ERR_CONFLICT')
  t.equal((await c.ingest('film', randomBody(100), { digest: false })).status, 409, 'without a digest too, once hashed')
  const again = await c.ingest('film', body)
  t.equal(again.status, 200)
  t.equal(again.json.status, 'exists')
  t.equal((await c.ingest('film', body, { digest: false })).status, 200)
  t.ok((await c.get('/v1/content/film')).body.equals(body), 'the first body is still what is served')
})

t.test('two ingests racing on one contentId: one wins, the other gets a 409', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const a = randomBody(2 * CS)
  const b = randomBody(2 * CS)
  const [ra, rb] = await Promise.all([c.ingest('race', a), c.ingest('race', b)])
  t.same([ra.status, rb.status].sort(), [201, 409])
  const winner = ra.status === 201 ? a : b
  t.ok((await c.get('/v1/content/race')).body.equals(winner))
})

t.test('an interrupted ingest is invisible, and running it again resumes', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(6 * CS + 500)
  const ac = new AbortController()
  const pipe = new PassThrough()
  const put = request(`${c.url}/v1/content/resumable`, {
    method: 'PUT', body: pipe, signal: ac.signal,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-digest': digestHeader(sha256Hex(body)), 'content-length': String(body.length) },
  }).catch(err => err as Error)
  pipe.write(body.subarray(0, 2 * CS + 1000))
  // barrier: both whole chunks are on all three owners
  await until(() => replicas(c).size === 6, 'two chunks on three owners')
  ac.abort()
  t.ok(await put instanceof Error, 'the client gave up mid-body')
  t.equal((await c.get('/v1/content/resumable')).status, 404, 'not readable')
  t.equal((await c.get('/v1/content/resumable/meta')).status, 404, 'no manifest')
  t.same(JSON.parse((await c.get('/v1/content')).body.toString()).items, [], 'not listed')

  const again = await c.ingest('resumable', body)
  t.equal(again.status, 201)
  t.same(again.json.replicas, { stored: 5 * 3, resumed: 2 * 3 }, 'the two stored chunks were not sent again')
  t.ok((await c.get('/v1/content/resumable')).body.equals(body))
})

t.test('DELETE removes the manifest, then the chunks; the id can then take a new body', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  await c.ingest('gone', randomBody(4 * CS))
  t.equal(replicas(c).size, 12)
  const del = await request(`${c.url}/v1/content/gone`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(del.statusCode, 200)
  t.match(await del.body.json(), { deleted: true, chunkReplicasDeleted: 12, chunkReplicasLeft: 0 })
  t.equal((await c.get('/v1/content/gone')).status, 404)
  t.equal(replicas(c).size, 0, 'no chunk left on any shard')
  t.ok(c.shards.every(s => s!.index.getManifest('gone') === undefined), 'no manifest left')
  t.equal((await request(`${c.url}/v1/content/gone`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode, 404)
  const fresh = randomBody(CS)
  t.equal((await c.ingest('gone', fresh)).status, 201)
  t.ok((await c.get('/v1/content/gone')).body.equals(fresh))
})

t.test('bad input is refused by name and leaves nothing visible', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(2 * CS)
  const res = await request(`${c.url}/v1/content/lie`, { method: 'PUT', body,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-digest': digestHeader(sha256Hex(Buffer.from('other'))) } })
  t.equal(res.statusCode, 400)
  t.equal((await res.body.json() as any).error.code, 'CDN_ERR_DIGEST')
  t.equal((await c.get('/v1/content/lie')).status, 404)
  const meta = await c.ingest('m', body, { meta: { title: 'x', rights: { regions: ['France'] } } })
  t.equal(meta.status, 400)
  t.match(meta.json.error.message, /rights\.regions\.0/)
  t.equal((await c.ingest('m', body, { meta: { nope: 1 } })).status, 400)
  t.equal((await c.ingest('x'.repeat(112), body)).status, 400, 'contentId longer than 111 characters')
  t.equal((await c.ingest('ends-with-dot.', body)).status, 400)
  const bad = await request(`${c.url}/v1/content/m`, { method: 'PUT', body, headers: { authorization: `Bearer ${TOKEN}`, 'content-digest': 'md5=:x:' } })
  t.equal(bad.statusCode, 400)
  await bad.body.dump()
})

t.test('an owner that is down fails the ingest unless writeQuorum allows it', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  await c.stopShard(1)
  const body = randomBody(2 * CS)
  const strict = await c.ingest('q', body)
  t.equal(strict.status, 502)
  t.equal((await c.get('/v1/content/q')).status, 404, 'invisible')
  const c2 = await TestCluster.start(t, { chunkSize: CS, overrides: { 'router.writeQuorum': 2 } })
  await c2.stopShard(1)
  const relaxed = await c2.ingest('q', body)
  t.equal(relaxed.status, 201)
  t.same(relaxed.json.replicas, { stored: 4, resumed: 0 })
  t.ok((await c2.get('/v1/content/q')).body.equals(body))
})

t.test('reelcdn ingest uploads a file, and recognises it once published', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const file = join(c.dir, 'film.mp4')
  const body = randomBody(5 * CS + 7)
  await writeFile(file, body)
  const env = { REELCDN_ROUTER_TOKEN: TOKEN }
  const out = await ingestFile(file, { id: 'cli-film', title: 'Ça tourne', category: ['drama', 'fr'], regions: 'fr,be', availableFrom: '2025-01-01T00:00:00Z', router: c.url }, env) as any
  t.equal(out.status, 'created')
  const m = JSON.parse((await c.get('/v1/content/cli-film/meta')).body.toString())
  t.equal(m.title, 'Ça tourne')
  t.equal(m.contentType, 'video/mp4')
  t.same(m.categories, ['drama', 'fr'])
  t.same(m.rights.regions, ['FR', 'BE'])
  t.ok((await c.get('/v1/content/cli-film')).body.equals(body))
  t.same(await ingestFile(file, { id: 'cli-film', category: [], router: c.url }, env), { status: 'exists', contentId: 'cli-film', sha256: sha256Hex(body) })
  await writeFile(file, randomBody(10))
  await t.rejects(ingestFile(file, { id: 'cli-film', category: [], router: c.url }, env), { code: 'CDN_ERR_CONFLICT' })
  await t.rejects(ingestFile(file, { id: 'other', category: [], router: c.url }, {}), { code: 'CDN_ERR_UNAUTHORIZED' })
})
