import t from 'tap'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody } from '../system/harness.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { sha256Hex } from '../../router/cluster/keys.js'

/**
 * From a read-only audit (stop 41): a single file whose manifest would be
 * larger than the shards take (origin.maxManifestBytes: about 7,800 chunks at
 * the default 1 MiB) was uploaded whole, then every shard refused its
 * manifest (413) and the router answered 503 "no shard could serve a
 * manifest write" with retry-after: 1: a retry could never succeed. It is now
 * refused 413 naming the setting: before the body when its Content-Length
 * says the size, else once the chunks read pass what a manifest can list.
 */
const CS = 64 * 1024

t.test('a title whose manifest the shards would refuse: 413 naming origin.maxManifestBytes', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS, overrides: { 'origin.maxManifestBytes': 4096 } })
  const body = randomBody(40 * CS)
  const sized = await c.ingest('big', body)
  t.equal(sized.status, 413, `with a Content-Length: ${JSON.stringify(sized.json.error)}`)
  t.match(sized.json.error.message, /origin\.maxManifestBytes/)
  t.equal(await stored(c), 0, 'no chunk was stored for it')
  // chunked: refused once the chunks read pass what a manifest can list, not after the whole body
  const chunked = await request(`${c.url}/v1/content/big2`, { method: 'PUT', body: Readable.from([body]),
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'video/mp4', 'content-digest': digestHeader(sha256Hex(body)) } })
  const j = await chunked.body.json() as { error: { message: string } }
  t.equal(chunked.statusCode, 413)
  t.match(j.error.message, /origin\.maxManifestBytes/)
  const copies = await stored(c)
  t.ok(copies > 0 && copies < 40 * 3, `stopped before the body's end: ${copies} of ${40 * 3} chunk copies written`)
  t.equal((await c.ingest('small', randomBody(3 * CS))).status, 201, 'a title that fits still ingests')
})

async function stored(c: TestCluster): Promise<number> {
  const text = (await c.get('/metrics')).body.toString()
  return text.split('\n').filter(l => l.startsWith('reelcdn_router_ingest_chunk_writes_total')).reduce((a, l) => a + Number(l.split(' ').pop()), 0)
}
