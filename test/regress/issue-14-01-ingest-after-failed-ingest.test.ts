import t from 'tap'
import { PassThrough } from 'node:stream'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody, until } from '../system/harness.js'
import { gateShard } from '../helpers/tcp-gate.js'

/**
 * Issue 14, item 1: an ingest that failed because a shard died mid-upload
 * (kill -9) left the router's chunk buffer pool holding one buffer twice, so
 * the next ingests gave that buffer to two chunks in flight at once and sent
 * healthy shards the wrong bytes (their digest check refused them: 400
 * CDN_ERR_DIGEST) until the router restarted.
 *
 * The shard that dies sits behind a TCP gate: holding its chunk PUTs keeps
 * them in flight (so the upload's last chunk waits for a free upload
 * slot, the moment the failure has to hit), killing it resets them as a
 * SIGKILL would. 8 MiB chunks, so a held PUT still has bytes to send from
 * its buffer (more than the kernel's socket buffers take in). No Content-Digest:
 * the router then asks no owner whether it holds a chunk already (a HEAD the
 * held shard would not answer) and PUTs at once.
 */
const CS = 8 * 1024 * 1024
const PUTS = 'PUT /v1/chunks/'

async function metric(c: TestCluster, name: string): Promise<number> {
  const text = (await c.get('/metrics')).body.toString()
  let sum = 0
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop())
  return sum
}

/** Starts an ingest and resolves once the router has read the whole body (its last chunk then waits for an upload slot). */
async function ingestRead(c: TestCluster, id: string, body: Buffer): Promise<{ answer: ReturnType<TestCluster['ingest']> }> {
  const before = await metric(c, 'reelcdn_router_ingest_bytes_total')
  const done = c.ingest(id, body, { digest: false })
  await until(async () => await metric(c, 'reelcdn_router_ingest_bytes_total') - before >= body.length, `the router read all of ${id}`, 20_000)
  return { answer: done }
}

t.test('ingest, a shard killed mid-ingest, then two more ingests: both succeed and read back byte-exact', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const gate = await gateShard(t, c, 2)
  const bodies = new Map<string, Buffer>()

  const first = randomBody(CS / 2)
  t.equal((await c.ingest('before', first)).status, 201, 'an ingest before the fault')
  bodies.set('before', first)

  // the fault: shard-3 stops reading, the upload's two chunks stay in flight, its tail waits; then shard-3 dies
  gate.hold(PUTS)
  const cut = await ingestRead(c, 'cut', randomBody(2 * CS + 1000))
  await gate.kill()
  const failed = await cut.answer
  t.not(failed.status, 201, `the ingest cut by the dead shard fails (${failed.status} ${failed.json.error?.code})`)
  await gate.revive()
  await c.router.cluster.health.checkAll()
  t.equal(await metric(c, 'reelcdn_router_ingest_buffers{state="in_use"}'), 0, 'every chunk buffer is back in the pool')
  t.ok(await metric(c, 'reelcdn_router_ingest_buffers_retired_total') >= 1, 'the buffers of the cut PUTs were retired, not reused')

  // the shard is back; the next ingests keep two chunks in flight again (shard-3 held until the whole body is read)
  for (const id of ['after-1', 'after-2']) {
    const body = randomBody(3 * CS - 1)
    gate.hold(PUTS)
    const pending = await ingestRead(c, id, body)
    gate.open()
    const r = await pending.answer
    t.equal(r.status, 201, `${id} after the failed ingest: ${r.status} ${r.json.error?.code ?? ''} ${r.json.error?.message ?? ''}`)
    bodies.set(id, body)
  }
  t.equal(await metric(c, 'reelcdn_router_ingest_buffers{state="in_use"}'), 0, 'and again after them')
  for (const [id, body] of bodies) {
    const got = await c.get(`/v1/content/${id}`)
    t.ok(got.status === 200 && got.body.equals(body), `${id} reads back byte-exact`)
  }
})

t.test('a client gone mid-upload while its chunks are in flight: they finish, every buffer comes back, the next ingest is byte-exact', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const gate = await gateShard(t, c, 0)
  gate.hold(PUTS)
  const ac = new AbortController()
  const pipe = new PassThrough()
  const body = randomBody(3 * CS)
  const before = await metric(c, 'reelcdn_router_ingest_bytes_total')
  const put = request(`${c.url}/v1/content/gone`, { method: 'PUT', body: pipe, signal: ac.signal,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-length': String(body.length) } }).catch((err: Error) => err)
  pipe.write(body.subarray(0, 2 * CS + 1000))
  // barrier: two chunks read and in flight (held by shard-1), the third being filled
  await until(async () => await metric(c, 'reelcdn_router_ingest_bytes_total') - before >= 2 * CS + 1000, 'the router read two chunks and more')
  ac.abort()
  t.ok(await put instanceof Error, 'the client gave up')
  gate.open()
  await until(async () => await metric(c, 'reelcdn_router_ingest_buffers{state="in_use"}') === 0, 'every buffer back in the pool')
  t.equal(await metric(c, 'reelcdn_router_ingest_buffers_retired_total'), 0, 'the chunks in flight finished: none retired')
  const next = randomBody(3 * CS - 1)
  t.equal((await c.ingest('next', next, { digest: false })).status, 201)
  t.ok((await c.get('/v1/content/next')).body.equals(next), 'the next ingest reads back byte-exact')
})
