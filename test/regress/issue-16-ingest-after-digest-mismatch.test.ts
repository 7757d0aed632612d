import t from 'tap'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody } from '../system/harness.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { sha256Hex } from '../../router/cluster/keys.js'
import { putRendition } from '../helpers/abr.js'

/**
 * From a read-only audit (stop 41): an upload whose body did not match its
 * Content-Digest (a file changed between hashing and sending) was refused
 * with 400 only at its end, after its chunks were stored under the version
 * the claimed digest names. The right file, sent next, takes that version,
 * found the wrong bytes in place of its first chunk and was refused 409
 * until the repairer collected them as orphans (24 h): and a DELETE could
 * not help, as nothing was published. The refused upload's chunks are now
 * deleted with the refusal.
 */
const CS = 64 * 1024

t.test('after a body that did not match its digest, the right body under the same digest ingests', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const right = randomBody(5 * CS)
  const wrong = Buffer.from(right)
  wrong[10] ^= 0xff // chunk 0 differs
  const bad = await request(`${c.url}/v1/content/film`, { method: 'PUT', body: wrong,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'video/mp4', 'content-digest': digestHeader(sha256Hex(right)) } })
  const badJson = await bad.body.json() as { error: { code: string } }
  t.equal(bad.statusCode, 400)
  t.equal(badJson.error.code, 'CDN_ERR_DIGEST')
  const good = await c.ingest('film', right)
  t.equal(good.status, 201, `the right body ingests: ${JSON.stringify(good.json.error ?? '')}`)
  const read = await c.get('/v1/content/film')
  t.ok(read.status === 200 && read.body.equals(right), 'and reads back whole')
})

t.test('the same for a rendition upload', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const right = randomBody(3 * CS)
  const wrong = Buffer.from(right)
  wrong[5] ^= 0xff
  const bad = await putRendition(c.url, 'abr', 'v1', wrong, TOKEN, { digest: sha256Hex(right) })
  t.equal(bad.status, 400)
  const good = await putRendition(c.url, 'abr', 'v1', right, TOKEN)
  t.equal(good.status, 200, `the right file is stored: ${JSON.stringify(good.json?.error ?? '')}`)
})
