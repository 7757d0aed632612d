import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'undici'
import { TestCluster } from './harness.js'

/** The default chunk size, end to end: ingest, ranges across the 64 MiB boundary, whole-chunk reads. */
const MiB = 1024 * 1024

t.test('at the 64 MiB default chunk size, reads are byte-exact across the chunk boundary', async t => {
  const c = await TestCluster.start(t, { chunkSize: 64 * MiB })
  t.equal(c.router.cluster.ring.copies, 3)
  const body = randomBytes(64 * MiB + 3 * MiB + 123)
  const ing = await c.ingest('feature', body)
  t.equal(ing.status, 201)
  t.equal(ing.json.chunks, 2)
  t.equal(ing.json.chunkSize, 64 * MiB)

  const edge = 64 * MiB
  for (const [a, b] of [[edge - 1, edge], [edge - MiB, edge + MiB], [0, 99], [body.length - 10, body.length - 1]] as const) {
    const r = await c.get('/v1/content/feature', { range: `bytes=${a}-${b}` })
    t.equal(r.status, 206)
    t.ok(r.body.equals(body.subarray(a, b + 1)), `bytes ${a}-${b}`)
  }
  for (let i = 0; i < 6; i++) {
    const a = edge - 5 * MiB + Math.floor(Math.random() * 4 * MiB)
    const b = a + MiB + Math.floor(Math.random() * 4 * MiB)
    if (!(await c.get('/v1/content/feature', { range: `bytes=${a}-${b}` })).body.equals(body.subarray(a, b + 1))) t.fail(`random range ${a}-${b}`)
  }

  // a whole 64 MiB chunk, as an edge fills it: hashed as it streams, digest from the headers
  const res = await request(`${c.url}/v1/content/feature/chunks/0`)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-length'], String(64 * MiB))
  const h = createHash('sha256')
  for await (const piece of res.body) h.update(piece as Buffer)
  const sha = h.digest('hex')
  t.equal(sha, createHash('sha256').update(body.subarray(0, edge)).digest('hex'))
  t.equal(res.headers.etag, `"${sha}"`)
  t.ok((await c.get('/v1/content/feature/chunks/1')).body.equals(body.subarray(edge)), 'the short last chunk')
  t.ok((await c.get('/v1/content/feature')).body.equals(body), 'the whole title')
})
