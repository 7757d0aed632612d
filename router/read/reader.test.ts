import t from 'tap'
import http from 'node:http'
import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { ShardClient } from '../cluster/shard-client.js'
import type { Cluster } from '../cluster/cluster.js'
import type { StoredFile } from '../cluster/files.js'
import { newRegistry, routerMetrics } from '../../lib/metrics.js'
import { loadConfig } from '../../lib/config/config.js'
import { quietLogger } from '../../lib/logger.js'
import { blockCrcs, blockListDigest } from '../../lib/integrity/block-hasher.js'
import { until } from '../../test/helpers/origin.js'
import { ChunkReader } from './reader.js'

/**
 * ChunkReader.writeRange across chunks, against a real node:http "shard" on
 * port 0 and a response whose writes complete only when the test says: how
 * many slabs a response holds where one chunk ends and the next begins.
 */
const MiB = 1024 * 1024
// a whole chunk is two 16 MiB windows (router/read/shard-windows.ts): 16 MiB, then 4
const CHUNK = 20 * MiB
const data = randomBytes(3 * CHUNK)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const chunkOf = (i: number) => data.subarray(i * CHUNK, (i + 1) * CHUNK)

async function setup(t: { teardown(fn: () => unknown): void }, memoryBytes = 256 * MiB) {
  /** the ranges asked for, as `chunk:first-last` */
  const asked: string[] = []
  const server = http.createServer((req, res) => {
    const m = /^\/v1\/chunks\/[^/]+\/(\d+)(\/crcs)?$/.exec(req.url ?? '')!
    const chunk = chunkOf(Number(m[1]))
    if (m[2]) return void res.end(blockCrcs(chunk))
    const r = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '')!
    const [a, b] = [Number(r[1]), Number(r[2])]
    asked.push(`${m[1]}:${a}-${b}`)
    res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${CHUNK}` })
    res.end(chunk.subarray(a, b + 1))
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const metrics = routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined })
  const client = new ShardClient({ id: 's1', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, weight: 1 },
    loadConfig({ env: {} }).router.upstream, metrics, 'tok')
  t.teardown(() => client.close())
  const cluster = { readOrder: () => [client], refused: { size: 0, note: () => {}, forget: () => {} } } as unknown as Cluster
  const reader = new ChunkReader(cluster, metrics, quietLogger('router'), false, true, { memoryBytes, waitMs: 5000 })
  const chunks = [0, 1, 2].map(i => chunkOf(i))
  const file: StoredFile = {
    contentId: 'c', rid: '', sid: 'sid', version: 'v', size: data.length, chunkSize: CHUNK, sha256: sha(data),
    chunks: chunks.map(sha), blocks: chunks.map(c => blockListDigest(blockCrcs(c))), name: 'c',
  }
  return { reader, file, asked, metrics }
}

/**
 * A response whose writes complete at once until `hold` is set; then each
 * waits, taken and unwritten, as on a client that stopped reading. With
 * `lag`, writes are taken (true) but complete only on `release`, as when a
 * socket's buffer has room and the kernel has not taken the bytes yet.
 */
class Response extends EventEmitter {
  destroyed = false
  closed = false
  hold = false
  lag = false
  bytes = 0
  /** what the client got, in order; a write not yet done is the view it was given (copied when done, as a socket takes it then) */
  readonly parts: Buffer[] = []
  private readonly held: { at: number; cb: (() => void) | undefined }[] = []

  write(b: Buffer, cb?: () => void): boolean {
    this.bytes += b.length
    if (!this.hold && !this.lag) {
      this.parts.push(Buffer.from(b))
      if (cb) queueMicrotask(cb)
      return true
    }
    this.held.push({ at: this.parts.length, cb })
    this.parts.push(b)
    return !this.hold
  }

  /** the client takes what was written: every write done, then 'drain' */
  release(): void {
    this.hold = this.lag = false
    for (const { at, cb } of this.held.splice(0)) {
      this.parts[at] = Buffer.from(this.parts[at]!)
      cb?.()
    }
    this.emit('drain')
  }

  /** the client leaves */
  leave(): void {
    this.destroyed = this.closed = true
    this.emit('close')
  }
}

t.test('a whole file across chunks and windows: every byte in order, two windows a chunk, every slab back', async t => {
  const { reader, file, asked } = await setup(t)
  const res = new Response()
  await reader.writeRange(file, 0, data.length - 1, res as unknown as ServerResponse)
  t.ok(Buffer.concat(res.parts).equals(data), 'every byte, in order')
  t.same(asked, [0, 1, 2].flatMap(i => [`${i}:0-16777215`, `${i}:16777216-20971519`]), 'two 16 MiB-slab windows a chunk')
  await until(() => reader.slabs.bytes().inUse === 0, 'every slab back')
})

t.test('at a chunk boundary the next chunk\'s window ahead waits for the last views of the chunk before it: two slabs, not three', async t => {
  const { reader, file, asked } = await setup(t)
  const res = new Response()
  // from chunk 0's last window on, writes are taken and not yet written out
  const orig = res.write.bind(res)
  res.write = (b: Buffer, cb?: () => void) => { if (res.bytes >= 16 * MiB) res.lag = true; return orig(b, cb) }
  const done = reader.writeRange(file, 0, data.length - 1, res as unknown as ServerResponse)
  // chunk 0 is handed over whole, then chunk 1's first window: its window ahead must wait for chunk 0's last writes
  await until(() => res.bytes >= CHUNK + 16 * MiB, 'chunk 0 and chunk 1\'s first window handed to the response')
  await sleep(50)
  t.notOk(asked.includes('1:16777216-20971519'), 'chunk 1\'s second window not asked for while chunk 0\'s last views are unwritten')
  t.ok(reader.slabs.bytes().inUse <= 32 * MiB, `two slabs at most (${reader.slabs.bytes().inUse / MiB} MiB)`)
  res.write = orig
  res.release()
  await done
  t.ok(Buffer.concat(res.parts).equals(data), 'every byte, in order')
  await until(() => reader.slabs.bytes().inUse === 0, 'every slab back')
})

t.test('a client that leaves while its read waits for relay memory ends that read at once, before headers or after, with no shard asked and no failover', async t => {
  const { reader, file, asked, metrics } = await setup(t, 4 * MiB)
  // the budget is lent: a player's range waits in the relay's memory line (5 s at most)
  const lender = reader.slabs.for(MiB)
  const lent = [await lender.take(), await lender.take()]
  // before headers: the file server's prepare
  const early = new Response()
  const prepared = reader.prepare(file, 0, 0, MiB - 1, early as unknown as ServerResponse)
  prepared.catch(() => {})
  // after headers: a range read
  const late = new Response()
  const reading = reader.writeRange(file, MiB, 2 * MiB - 1, late as unknown as ServerResponse)
  reading.catch(() => {})
  // each read is in the memory line once it listens for its client's close (it asks for its slab in the same step)
  await until(() => early.listenerCount('close') > 0 && late.listenerCount('close') > 0, 'both reads waiting for relay memory')
  const t0 = performance.now()
  early.leave()
  late.leave()
  await t.rejects(prepared, { name: 'ClientClosedError' }, 'not a failover to no one (NoReplicaError)')
  await t.rejects(reading, { name: 'ClientClosedError' })
  t.ok(performance.now() - t0 < 1000, 'at once, not when memory freed or the wait ran out')
  for (const x of lent) lender.give(x)
  t.same(asked, [], 'no shard was asked for either read')
  t.same((await metrics.failovers.get()).values.map(v => v.value), [], 'no failover counted')
  t.same(reader.slabs.bytes().inUse, 0, 'every slab back')
  // a client already gone when its read starts: the same, without waiting
  const gone = new Response()
  gone.leave()
  await t.rejects(reader.writeRange(file, 0, MiB - 1, gone as unknown as ServerResponse), { name: 'ClientClosedError' })
  t.same(asked, [])
})

t.test('a read through the HTTP client (no block list to check) whose client leaves while it waits for a connection is never sent to the shard', async t => {
  // one connection to the shard: the first read holds it (its answer waits), the second waits in the client's queue
  const asked: string[] = []
  let answer: (() => void) | undefined
  const chunk = chunkOf(0)
  const server = http.createServer((req, res) => {
    const r = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '')!
    const [a, b] = [Number(r[1]), Number(r[2])]
    asked.push(`${a}-${b}`)
    const send = () => { res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${CHUNK}` }); res.end(chunk.subarray(a, b + 1)) }
    if (asked.length === 1) answer = send
    else send()
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const metrics = routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined })
  const client = new ShardClient({ id: 's1', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, weight: 1 },
    { ...loadConfig({ env: {} }).router.upstream, connections: 1 }, metrics, 'tok')
  t.teardown(() => client.close())
  const cluster = { readOrder: () => [client], refused: { size: 0, note: () => {}, forget: () => {} } } as unknown as Cluster
  const reader = new ChunkReader(cluster, metrics, quietLogger('router'), false, true)
  // a title ingested before manifests carried block lists: its reads go through undici, unchecked block by block
  const file: StoredFile = { contentId: 'c', rid: '', sid: 'sid', version: 'v', size: CHUNK, chunkSize: CHUNK, sha256: sha(chunk), chunks: [sha(chunk)], blocks: undefined, name: 'c' }
  const first = new Response()
  const holding = reader.writeRange(file, 0, MiB - 1, first as unknown as ServerResponse)
  await until(() => answer !== undefined, 'the first read at the shard')
  const gone = new Response()
  const waiting = reader.writeRange(file, MiB, 2 * MiB - 1, gone as unknown as ServerResponse)
  waiting.catch(() => {})
  await sleep(50)
  const t0 = performance.now()
  gone.leave()
  // bounded: a read that does not end with its client waits for the first read's connection, which waits for this
  await t.rejects(Promise.race([waiting, sleep(3000).then(() => { throw new Error('still waiting 3 s after its client left') })]), { name: 'ClientClosedError' })
  t.ok(performance.now() - t0 < 1000, 'at once, not once the connection came free')
  answer!()
  await holding
  t.ok(Buffer.concat(first.parts).equals(chunk.subarray(0, MiB)), 'the first read whole')
  await sleep(100)
  t.same(asked, [`0-${MiB - 1}`], 'the read whose client left was never sent')
  t.same((await metrics.failovers.get()).values.map(v => v.value), [], 'no failover counted')
  const upstream = (await metrics.upstream.get()).values.filter(v => v.labels.result !== '2xx').map(v => `${v.labels.result}: ${v.value}`)
  t.same(upstream, [], 'nor a shard error: the request was dropped by the router, not failed by the shard')
})
