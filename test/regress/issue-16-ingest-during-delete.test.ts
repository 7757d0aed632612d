import t from 'tap'
import { PassThrough, Readable } from 'node:stream'
import { request } from 'undici'
import { digestHeader } from '../../lib/integrity/digest.js'
import { sha256Hex } from '../../router/cluster/keys.js'
import { TestCluster, TOKEN, randomBody, until } from '../system/harness.js'
import { gateShard } from '../helpers/tcp-gate.js'

/**
 * From a read-only audit (stop 41): a DELETE removes a title's manifest
 * first, then its chunks, eight at a time. An ingest of the same bytes while
 * those chunk deletes were still running took the same version (it comes
 * from the body's digest), found the chunks not yet deleted, counted them as
 * already stored, published and answered 201; the DELETE then removed them,
 * and the acknowledged title read 503. An ingest of a title whose DELETE is
 * in progress is now refused (409) until the DELETE has answered.
 */
const CS = 64 * 1024

t.test('an ingest while the same title\'s DELETE is deleting its chunks is refused, and nothing acknowledged is lost', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(40 * CS)
  t.equal((await c.ingest('film', body)).status, 201)
  const gate = await gateShard(t, c, 2)
  // shard-3 stops reading chunk deletes: the DELETE's workers wait on it with the manifest already gone
  gate.hold('DELETE /v1/chunks/')
  const deleting = request(`${c.url}/v1/content/film`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  await until(async () => (await c.get('/v1/content/film/meta')).status === 404, 'the manifest to be gone')
  const again = await c.ingest('film', body)
  t.equal(again.status, 409, 'refused while the DELETE runs')
  t.match(again.json.error?.message, /being deleted/)
  gate.open()
  t.equal((await deleting).statusCode, 200, 'the DELETE answers')
  t.equal((await c.ingest('film', body)).status, 201, 'after it, the same title ingests')
  const read = await c.get('/v1/content/film')
  t.equal(read.status, 200)
  t.ok(read.body.equals(body), 'and reads back whole')
})

t.test('an upload that arrived before the DELETE, and waited behind another upload of the same bytes, is refused too', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(40 * CS)
  const gate = await gateShard(t, c, 2)
  // manifest lookups of any result (a missing title's may be remembered for a moment: 'cached')
  const lookups = async () => (await c.get('/metrics')).body.toString().split('\n')
    .filter(l => l.startsWith('reelcdn_router_manifest_lookups_total{')).reduce((a, l) => a + Number(l.split(' ').pop()), 0)
  const put = (b: Readable | Buffer) => request(`${c.url}/v1/content/film`, { method: 'PUT', body: b,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'video/mp4', 'content-digest': digestHeader(sha256Hex(body)), 'content-length': String(body.length) } })
  // U1: its body held half-way; U2: the same bytes, arriving while U1 runs (it finds nothing published, then waits its turn)
  const pipe = new PassThrough()
  const u1 = put(pipe)
  pipe.write(body.subarray(0, 20 * CS))
  const before = await lookups()
  const u2 = put(body)
  await until(async () => await lookups() > before, 'U2 to find the title unpublished')
  pipe.end(body.subarray(20 * CS))
  t.equal((await u1).statusCode, 201, 'U1 publishes')
  // the DELETE, its chunk deletes held on shard-3, then U2's turn
  gate.hold('DELETE /v1/chunks/')
  const deleting = request(`${c.url}/v1/content/film`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  const r2 = await u2
  const j2 = await r2.body.json() as { error?: { message: string } }
  t.equal(r2.statusCode, 409, `U2 refused: ${JSON.stringify(j2)}`)
  gate.open()
  t.equal((await deleting).statusCode, 200)
  t.equal((await c.get('/v1/content/film')).status, 404, 'the title is gone, not published without its chunks')
})
