import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ServerResponse } from 'node:http'
import { edgeMetrics, newRegistry } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { DiskIndex } from '../tiers/disk-index.js'
import { DiskTier } from '../tiers/disk-tier.js'
import { recoverDisk } from '../tiers/disk-recovery.js'
import { createPolicy } from '../policy/policy.js'
import { chunkKey, type ChunkRef } from '../title.js'
import { ThreadDisk } from './thread-disk.js'

/**
 * A serve thread's copy of the disk tier, driven here in one thread: the
 * main thread's DiskTier writes, evicts and purges, its watcher feeds the
 * copy as ServeThreads posts to a thread, and the copy reads on its own.
 */
const CHUNK = 200 * 1024 // not a multiple of the 64 KiB block: the last block is short
const READ = 128 * 1024

function chunk(index: number): { ref: ChunkRef; buf: Buffer } {
  const buf = Buffer.alloc(CHUNK)
  for (let i = 0; i < CHUNK; i += 4) buf.writeUInt32BE((i * 2654435761 + index) >>> 0, i)
  const sha256 = createHash('sha256').update(buf).digest('hex')
  return { ref: { key: chunkKey('movie', index, sha256), contentId: 'movie', index, sha256, size: CHUNK }, buf }
}

async function setup(t: Test, opts: { forwardRemovals?: boolean } = {}) {
  const dir = t.testdir()
  const index = new DiskIndex(join(dir, 'index.sqlite'))
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0 })
  const tier = new DiskTier(dir, createPolicy('lru', 4 * CHUNK), index, metrics, quietLogger('edge'),
    { readSize: READ, writeQueueBytes: 16 * CHUNK, accessFlushMs: 60000, openFiles: 8 })
  await recoverDisk(tier, quietLogger('edge'))
  const reported: [string, number][] = []
  // what ServeThreads does with a thread's report: the main thread drops the chunk
  const copy = new ThreadDisk(dir, READ, 8, (key, block) => { reported.push([key, block]); void tier.corruptElsewhere(key, block) })
  tier.watch({ added: rows => copy.added(rows), removed: keys => { if (opts.forwardRemovals !== false) copy.removed(keys) } })
  t.teardown(async () => {
    await copy.close()
    await tier.close()
    index.close()
  })
  return { dir, tier, metrics, copy, reported }
}

/** Reads [start, end] of `key` through the thread's copy, as serveDisk does: the pieces it was handed, in order. */
async function threadRead(copy: ThreadDisk, key: string, start: number, end: number, held?: Awaited<ReturnType<ThreadDisk['open']>>): Promise<Buffer[]> {
  const got = held ?? await copy.open(key)
  if (got === undefined) throw new Error('not in the copy')
  const parts: Buffer[] = []
  try {
    await copy.writeRange(got.row, got.h, start, end, {} as ServerResponse,
      async (_r, piece, written) => { parts.push(Buffer.from(piece)); written?.() },
      (_r, piece, written) => { parts.push(Buffer.from(piece)); written?.() })
  } finally {
    if (held === undefined) copy.release(got.h)
  }
  return parts
}

t.test('a thread reads a chunk the main thread stored, verified, in the main thread\'s pieces', async t => {
  const { tier, copy } = await setup(t)
  const x = chunk(0)
  tier.write(x.ref, x.buf)
  await tier.idle()
  t.ok(copy.has(x.ref.key), 'the copy learned of it once its file was in place')
  const parts = await threadRead(copy, x.ref.key, 1000, CHUNK - 1)
  t.ok(Buffer.concat(parts).equals(x.buf.subarray(1000)), 'byte-exact')
  // pieces of readSize + one block from the block the range starts in, as DiskTier.writeRange reads
  t.same(parts.map(p => p.length), [READ + 64 * 1024 - 1000, CHUNK - (READ + 64 * 1024)])
})

t.test('a block corrupt on disk is refused by the thread as by the main thread, never sent, and the main thread drops the chunk once', async t => {
  const { dir, tier, metrics, copy, reported } = await setup(t)
  const x = chunk(0)
  tier.write(x.ref, x.buf)
  await tier.idle()
  const file = join(dir, 'chunks', 'movie', `0-${x.ref.sha256}.chunk`)
  const bytes = readFileSync(file)
  bytes[70000]! ^= 0x01 // block 1
  writeFileSync(file, bytes)
  t.ok(Buffer.concat(await threadRead(copy, x.ref.key, 0, 1000)).equals(x.buf.subarray(0, 1001)), 'a block before the damage still verifies')
  const sent: Buffer[] = []
  const got = await copy.open(x.ref.key)
  await t.rejects(copy.writeRange(got!.row, got!.h, 60000, 80000, {} as ServerResponse, async (_r, p) => void sent.push(p), (_r, p) => void sent.push(p)),
    { code: 'CDN_ERR_CORRUPT' })
  copy.release(got!.h)
  t.equal(sent.length, 0, 'not one byte of the piece holding the bad block')
  t.same(reported, [[x.ref.key, 1]], 'the main thread was told which block')
  while (existsSync(file)) await new Promise(r => setTimeout(r, 5)) // the main thread's unlink, after the row
  t.notOk(copy.has(x.ref.key), 'the thread no longer opens it')
  t.notOk(tier.has(x.ref.key), 'the main thread dropped it')
  t.notOk(existsSync(file), 'and its file')
  t.equal((await metrics.corrupt.get()).values.find(v => v.labels.found_by === 'thread')?.value, 1, 'counted once, as a thread found it')
  await tier.corruptElsewhere(x.ref.key, 1)
  t.equal((await metrics.corrupt.get()).values.find(v => v.labels.found_by === 'thread')?.value, 1, 'a second report of a dropped chunk counts nothing')
})

t.test('a chunk evicted, purged or rewritten while a thread reads it yields its right bytes or a clean error, never wrong ones', async t => {
  const { dir, tier, copy } = await setup(t)
  const x = chunk(0)
  tier.write(x.ref, x.buf)
  await tier.idle()
  const file = join(dir, 'chunks', 'movie', `0-${x.ref.sha256}.chunk`)

  // a read open when the purge comes finishes on its descriptor: the unlinked file's bytes, verified
  const held = await copy.open(x.ref.key)
  await tier.purge('movie')
  t.notOk(existsSync(file), 'purged: row and file gone')
  t.notOk(copy.has(x.ref.key), 'the removal reached the copy before the file went')
  t.ok(Buffer.concat(await threadRead(copy, x.ref.key, 0, CHUNK - 1, held)).equals(x.buf), 'the read in flight gets the right bytes')
  t.equal(await copy.open(x.ref.key), undefined, 'and no new read opens it')

  // written again (a new file renamed over the name) while the old descriptor is still open: both read the same bytes
  tier.write(x.ref, x.buf)
  await tier.idle()
  t.ok(Buffer.concat(await threadRead(copy, x.ref.key, 5, 200000, held)).equals(x.buf.subarray(5, 200001)), 'the old descriptor')
  copy.release(held!.h)
  t.ok(Buffer.concat(await threadRead(copy, x.ref.key, 5, 200000)).equals(x.buf.subarray(5, 200001)), 'the new file')

  // the file cut short under an open descriptor (what a damaged disk can do): a clean error, not short or stale bytes
  const again = await copy.open(x.ref.key)
  truncateSync(file, 100000)
  await t.rejects(threadRead(copy, x.ref.key, 90000, 150000, again), { code: 'CDN_ERR_CORRUPT' })
  copy.release(again!.h)
})

t.test('a removal still on its way to the thread: the chunk\'s row or file is gone, so the thread\'s open is a miss (relayed)', async t => {
  const { tier, copy } = await setup(t, { forwardRemovals: false })
  const x = chunk(0)
  tier.write(x.ref, x.buf)
  await tier.idle()
  await tier.remove(x.ref.key)
  t.ok(copy.has(x.ref.key), 'the copy has not heard yet')
  t.equal(await copy.open(x.ref.key), undefined, 'its open finds nothing to read')
})
