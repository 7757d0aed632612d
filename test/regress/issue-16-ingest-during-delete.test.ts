import t from 'tap'
import { request } from 'undici'
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
