import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ServerResponse } from 'node:http'
import { edgeMetrics, newRegistry } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import { DiskIndex } from './disk-index.js'
import { DiskTier } from './disk-tier.js'
import { recoverDisk } from './disk-recovery.js'
import { createPolicy } from '../policy/policy.js'
import { chunkKey, type ChunkRef } from '../title.js'

const CHUNK = 200 * 1024 // not a multiple of the 64 KiB block: the last block is short

function chunk(index: number, size = CHUNK): { ref: ChunkRef; buf: Buffer } {
  const buf = Buffer.alloc(size, index + 1)
  buf.write(`chunk ${index}`, 0)
  const sha256 = createHash('sha256').update(buf).digest('hex')
  return { ref: { key: chunkKey('movie', index, sha256), contentId: 'movie', index, sha256, size }, buf }
}

function open(dir: string, capacity: number, queueBytes = 16 * CHUNK) {
  const index = new DiskIndex(join(dir, 'index.sqlite'))
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0 })
  const tier = new DiskTier(dir, createPolicy('lru', capacity), index, metrics, quietLogger('edge'),
    { readSize: 128 * 1024, writeQueueBytes: queueBytes, accessFlushMs: 60000, openFiles: 8 })
  return { tier, index, metrics }
}

async function read(tier: DiskTier, key: string, start: number, end: number): Promise<Buffer> {
  const row = tier.get(key)!
  const h = await tier.openRead(row)
  if (!h) throw new Error('gone')
  const parts: Buffer[] = []
  try {
    await tier.writeRange(row, h, start, end, {} as ServerResponse, async (_res, piece) => { parts.push(Buffer.from(piece)) })
  } finally {
    tier.release(h)
  }
  return Buffer.concat(parts)
}

function chunkFiles(dir: string): string[] {
  const root = join(dir, 'chunks')
  return existsSync(root) ? readdirSync(root).flatMap(d => readdirSync(join(root, d)).map(f => join(d, f))) : []
}

t.test('stored chunks read back verified, in any range; the tier never holds more than its size', async t => {
  const dir = t.testdir()
  const { tier, index, metrics } = open(dir, 3 * CHUNK)
  await recoverDisk(tier, quietLogger('edge'))
  const chunks = [0, 1, 2, 3, 4].map(i => chunk(i))
  for (const c of chunks) tier.write(c.ref, c.buf)
  await tier.idle()
  t.equal(tier.stats().entries, 3)
  t.equal(tier.stats().bytes, 3 * CHUNK)
  t.equal(chunkFiles(dir).length, 3, 'evicted files are gone from the disk')
  t.notOk(tier.has(chunks[0]!.ref.key))
  t.equal((await metrics.evictions.get()).values[0]?.value, 2)
  for (const [s, e] of [[0, CHUNK - 1], [1, 1], [65535, 65536], [CHUNK - 10, CHUNK - 1], [70000, 150000]] as const)
    t.ok((await read(tier, chunks[4]!.ref.key, s, e)).equals(chunks[4]!.buf.subarray(s, e + 1)), `bytes ${s}-${e}`)
  t.ok((await tier.readAll(tier.get(chunks[3]!.ref.key)!))?.equals(chunks[3]!.buf))
  await tier.close()
  index.close()
})

t.test('a restart keeps whole chunks, discards partial and stray files, and restores recency', async t => {
  const dir = t.testdir()
  const first = open(dir, 3 * CHUNK)
  await recoverDisk(first.tier, quietLogger('edge'))
  const [a, b, c, d] = [0, 1, 2, 3].map(i => chunk(i))
  for (const x of [a!, b!, c!]) first.tier.write(x.ref, x.buf)
  await first.tier.idle()
  first.tier.get(a!.ref.key) // a is now the most recently used; b the least
  first.tier.flushAccess()
  first.index.close() // no close(): as after kill -9, apart from the access flush

  // what a crash can leave behind
  writeFileSync(join(dir, 'tmp', 'abc.part'), 'half a chunk')
  const orphan = chunk(7)
  mkdirSync(join(dir, 'chunks', 'movie'), { recursive: true })
  writeFileSync(join(dir, 'chunks', 'movie', `7-${orphan.ref.sha256}.chunk`), orphan.buf)
  const lost = chunk(8)
  const idx = new DiskIndex(join(dir, 'index.sqlite'))
  idx.insert({ key: lost.ref.key, contentId: 'movie', index: 8, sha256: lost.ref.sha256, size: CHUNK, storedAt: 1, lastAccess: 1 }, blockCrcs(lost.buf))
  idx.close()
  truncateSync(join(dir, 'chunks', 'movie', `2-${c!.ref.sha256}.chunk`), 1000)

  const again = open(dir, 3 * CHUNK)
  const report = await recoverDisk(again.tier, quietLogger('edge'))
  t.same(report, { tmp_removed: 1, rows_dropped: 2, orphans_removed: 1, loaded: 2, evicted: 0, policy_restored: 0 })
  t.ok(again.tier.has(a!.ref.key) && again.tier.has(b!.ref.key))
  t.notOk(again.tier.has(c!.ref.key), 'the short file is gone')
  t.same(chunkFiles(dir).sort(), [`movie/0-${a!.ref.sha256}.chunk`, `movie/1-${b!.ref.sha256}.chunk`])
  t.ok((await read(again.tier, a!.ref.key, 0, CHUNK - 1)).equals(a!.buf))
  // two more chunks: the second evicts b, which was least recently used before the restart
  again.tier.write(c!.ref, c!.buf)
  again.tier.write(d!.ref, d!.buf)
  await again.tier.idle()
  t.notOk(again.tier.has(b!.ref.key), 'b went first')
  t.ok(again.tier.has(a!.ref.key))
  await again.tier.close()
  again.index.close()
})

t.test('a corrupt byte on disk is never served: the read fails and the chunk is dropped', async t => {
  const dir = t.testdir()
  const { tier, index, metrics } = open(dir, 3 * CHUNK)
  await recoverDisk(tier, quietLogger('edge'))
  const x = chunk(0)
  tier.write(x.ref, x.buf)
  await tier.idle()
  const file = join(dir, 'chunks', 'movie', `0-${x.ref.sha256}.chunk`)
  const bytes = readFileSync(file)
  bytes[150000]! ^= 0x01
  writeFileSync(file, bytes)
  t.ok((await read(tier, x.ref.key, 0, 1000)).equals(x.buf.subarray(0, 1001)), 'blocks before the damage still verify')
  await t.rejects(read(tier, x.ref.key, 140000, 160000), { code: 'CDN_ERR_CORRUPT' })
  t.notOk(tier.has(x.ref.key))
  t.notOk(existsSync(file))
  t.equal((await metrics.corrupt.get()).values[0]?.value, 1)
  await tier.close()
  index.close()
})

t.test('a purge drops stored chunks and queued writes of the title', async t => {
  const dir = t.testdir()
  const { tier, index } = open(dir, 10 * CHUNK)
  await recoverDisk(tier, quietLogger('edge'))
  const [a, b, c] = [0, 1, 2].map(i => chunk(i))
  tier.write(a!.ref, a!.buf)
  await tier.idle()
  tier.write(b!.ref, b!.buf)
  tier.write(c!.ref, c!.buf)
  t.equal(await tier.purge('movie'), 1)
  await tier.idle()
  t.equal(tier.stats().entries, 0)
  t.equal(tier.stats().bytes, 0)
  t.same(chunkFiles(dir), [])
  await tier.close()
  index.close()
})

t.test('the write queue is bounded in bytes: a burst within it is all written, past it a write is dropped and counted, and a waiting chunk is readable', async t => {
  const dir = t.testdir()
  const { tier, index, metrics } = open(dir, 20 * CHUNK, 6 * CHUNK)
  await recoverDisk(tier, quietLogger('edge'))
  const cs = Array.from({ length: 8 }, (_, i) => chunk(i))
  // eight chunks verified in one tick: the two writers have only started on the first two
  for (const c of cs) tier.write(c.ref, c.buf)
  t.equal(tier.pendingWrites, 6, 'six chunks fit the bound (those being written count)')
  t.equal(tier.pendingBytes, 6 * CHUNK)
  t.equal((await metrics.diskWriteQueueBytes.get()).values[0]?.value, 6 * CHUNK)
  t.ok(tier.staged(cs[5]!.ref.key)?.equals(cs[5]!.buf), 'a queued chunk is readable from its Buffer')
  t.equal(tier.staged(cs[7]!.ref.key), undefined, 'a dropped one is not')
  t.notOk(tier.room(1), 'no room for readahead')
  tier.write(cs[3]!.ref, cs[3]!.buf) // already queued: coalesced, not dropped
  const drops = async () => (await metrics.diskWriteDrops.get()).values.map(v => [v.labels.reason, v.value])
  t.same(await drops(), [['queue_full', 2]])
  await tier.idle()
  t.equal(tier.stats().entries, 6)
  t.equal(tier.pendingBytes, 0)
  t.ok(tier.room(6 * CHUNK))
  t.notOk(tier.room(6 * CHUNK + 1))
  tier.write(cs[0]!.ref, cs[0]!.buf) // on disk: nothing to do
  t.equal(tier.pendingWrites, 0)
  // a chunk larger than the whole bound still goes through an empty queue
  const big = chunk(9, 7 * CHUNK)
  tier.write(big.ref, big.buf)
  await tier.idle()
  t.ok(tier.has(big.ref.key))
  await tier.close()
  index.close()
})

t.test('two writes run at once; one the other\'s insert evicts is abandoned, counted as evicted (not dropped), and leaves no file', async t => {
  const dir = t.testdir()
  const { tier, index, metrics } = open(dir, CHUNK) // room for one chunk
  await recoverDisk(tier, quietLogger('edge'))
  const [a, b] = [0, 1].map(i => chunk(i))
  tier.write(a!.ref, a!.buf)
  tier.write(b!.ref, b!.buf) // the second writer takes b at once; its insert evicts a, which is still being written
  t.equal(tier.pendingWrites, 2)
  t.equal(tier.staged(a!.ref.key), undefined, 'a cancelled write is no longer served')
  t.ok(tier.staged(b!.ref.key)?.equals(b!.buf))
  await tier.idle()
  t.notOk(tier.has(a!.ref.key))
  t.ok(tier.has(b!.ref.key))
  t.same(chunkFiles(dir), [`movie/1-${b!.ref.sha256}.chunk`], 'only b is on disk')
  t.same(readdirSync(join(dir, 'tmp')), [], 'and nothing is left half-written')
  t.same((await metrics.diskWrites.get()).values.map(v => [v.labels.result, v.value]).sort(), [['evicted', 1], ['ok', 1]])
  t.same((await metrics.diskWriteDrops.get()).values, [], 'an eviction is not a drop')
  t.equal(tier.stats().bytes, CHUNK)
  await tier.close()
  index.close()
})

t.test('a purge drops queued writes of the title, counted as purged, and frees their bytes', async t => {
  const dir = t.testdir()
  const { tier, index, metrics } = open(dir, 10 * CHUNK)
  await recoverDisk(tier, quietLogger('edge'))
  const [a, b, c] = [0, 1, 2].map(i => chunk(i))
  for (const x of [a!, b!, c!]) tier.write(x.ref, x.buf)
  await tier.purge('movie')
  t.equal(tier.staged(c!.ref.key), undefined)
  t.equal(tier.staged(a!.ref.key), undefined, 'nor those being written')
  await tier.idle()
  t.equal(tier.pendingBytes, 0)
  t.equal(tier.stats().entries, 0)
  t.same((await metrics.diskWriteDrops.get()).values.map(v => [v.labels.reason, v.value]), [['purged', 3]])
  await tier.close()
  index.close()
})

t.test('a chunk purged (or evicted) while being written can be written again at once: its new write waits for the old one, then lands', async t => {
  const dir = t.testdir()
  const { tier, index, metrics } = open(dir, 10 * CHUNK)
  await recoverDisk(tier, quietLogger('edge'))
  const [a, b, c] = [0, 1, 2].map(i => chunk(i))
  for (const x of [a!, b!, c!]) tier.write(x.ref, x.buf) // a and b being written, c waiting
  await tier.purge('movie')
  t.notOk(tier.writing(a!.ref.key), 'a cancelled write does not stand for its chunk')
  for (const x of [a!, b!, c!]) tier.write(x.ref, x.buf) // the title filled again after the purge
  t.ok(tier.staged(a!.ref.key)?.equals(a!.buf), 'the new write is served while it waits')
  await tier.idle()
  t.equal(tier.stats().entries, 3, 'all three are on disk')
  t.same(chunkFiles(dir).sort(), [a!, b!, c!].map(x => `movie/${x.ref.index}-${x.ref.sha256}.chunk`).sort())
  t.same(readdirSync(join(dir, 'tmp')), [])
  for (const x of [a!, b!, c!]) t.ok((await read(tier, x.ref.key, 0, CHUNK - 1)).equals(x.buf), `chunk ${x.ref.index} reads back`)
  t.same((await metrics.diskWriteDrops.get()).values.map(v => [v.labels.reason, v.value]), [['purged', 3]])

  // one the other writer's insert evicted while it was written, filled again: written again
  const small = open(t.testdir(), CHUNK)
  await recoverDisk(small.tier, quietLogger('edge'))
  small.tier.write(a!.ref, a!.buf)
  small.tier.write(b!.ref, b!.buf) // evicts a, still being written
  small.tier.write(a!.ref, a!.buf) // a again: evicts b once its turn comes
  await small.tier.idle()
  t.ok(small.tier.has(a!.ref.key), 'the last one written is on disk')
  t.equal(small.tier.stats().bytes, CHUNK)
  await small.tier.close()
  small.index.close()
  await tier.close()
  index.close()
})

t.test('a range of many pieces: pooled read buffers are reused only after their write is done, and bytes stay exact', async t => {
  const dir = t.testdir()
  const { tier, index } = open(dir, 10 * 1024 * 1024)
  await recoverDisk(tier, quietLogger('edge'))
  const x = chunk(0, 1000 * 1024 + 123) // six pieces of up to 192 KiB (readSize 128 KiB + one block)
  tier.write(x.ref, x.buf)
  await tier.idle()
  const row = tier.get(x.ref.key)!
  const h = (await tier.openRead(row))!
  t.teardown(() => tier.release(h))
  // a socket that has written nothing yet: it holds every piece (not a copy) and calls back only later
  const held: Buffer[] = []
  const later: (() => void)[] = []
  await tier.writeRange(row, h, 5, x.ref.size - 1, {} as ServerResponse, async (_res, piece, written) => {
    held.push(piece)
    later.push(() => written?.())
  })
  t.equal(held.length, 6)
  t.ok(Buffer.concat(held).equals(x.buf.subarray(5)), 'no buffer was reused while its piece was still unwritten')
  t.equal(tier.pool.allocated, 6, 'so each piece had a buffer of its own')
  for (const f of later) f()
  t.equal(tier.pool.idle, 6, 'written pieces give their buffers back')
  const copies: Buffer[] = []
  await tier.writeRange(row, h, 0, x.ref.size - 1, {} as ServerResponse, async (_res, piece, written) => {
    copies.push(Buffer.from(piece))
    written?.()
  })
  t.ok(Buffer.concat(copies).equals(x.buf), 'a second read through reused buffers is byte-exact')
  t.equal(tier.pool.allocated, 6, 'and allocated nothing new')
  const failed: Buffer[] = []
  await tier.writeRange(row, h, 0, 100, {} as ServerResponse, async () => { throw new Error('client gone') }).catch(e => failed.push(Buffer.from((e as Error).message)))
  t.equal(failed.length, 1, 'a send that fails ends the read')
  t.equal(tier.pool.allocated, 6)
  await tier.close()
  index.close()
})

t.test('a corrupt block deep in a many-piece range: the pieces before it go out, not one byte of the bad block or after', async t => {
  const dir = t.testdir()
  const { tier, index, metrics } = open(dir, 10 * 1024 * 1024)
  await recoverDisk(tier, quietLogger('edge'))
  const x = chunk(0, 1000 * 1024 + 123)
  tier.write(x.ref, x.buf)
  await tier.idle()
  const file = join(dir, 'chunks', 'movie', `0-${x.ref.sha256}.chunk`)
  const bytes = readFileSync(file)
  const damaged = 600 * 1024 + 17 // block 9, in the fourth piece
  bytes[damaged]! ^= 0x40
  writeFileSync(file, bytes)
  const sent: Buffer[] = []
  const row = tier.get(x.ref.key)!
  const h = (await tier.openRead(row))!
  await t.rejects(tier.writeRange(row, h, 0, x.ref.size - 1, {} as ServerResponse, async (_res, piece, written) => {
    sent.push(Buffer.from(piece))
    written?.()
  }), { code: 'CDN_ERR_CORRUPT' })
  tier.release(h)
  const out = Buffer.concat(sent)
  t.ok(out.length <= 9 * 64 * 1024, `${out.length} bytes went out, all before the damaged block`)
  t.ok(out.equals(x.buf.subarray(0, out.length)), 'and they are the right ones')
  t.notOk(tier.has(x.ref.key), 'the chunk is dropped')
  t.equal((await metrics.corrupt.get()).values[0]?.value, 1)
  await tier.close()
  index.close()
})

t.test('an index from before issue 15 upgrades in place; renditions\' chunks are stored, recovered and purged with their title', async t => {
  const dir = t.testdir()
  // the schema-2 index an edge wrote before issue 15, with one chunk of a single-file title and its file
  const old = chunk(0)
  const Database = (await import('better-sqlite3')).default
  const db = new Database(join(dir, 'index.sqlite'))
  db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('schema_version', '2');
    CREATE TABLE chunks (key TEXT PRIMARY KEY, content_id TEXT NOT NULL, idx INTEGER NOT NULL, sha256 TEXT NOT NULL,
      size INTEGER NOT NULL, crcs BLOB NOT NULL, stored_at INTEGER NOT NULL, last_access INTEGER NOT NULL) WITHOUT ROWID;
    CREATE INDEX chunks_by_title ON chunks (content_id);
    CREATE TABLE policy_state (tier TEXT PRIMARY KEY, state TEXT NOT NULL, saved_at INTEGER NOT NULL);`)
  db.prepare('INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(old.ref.key, 'movie', 0, old.ref.sha256, CHUNK, blockCrcs(old.buf), 1, 1)
  db.close()
  mkdirSync(join(dir, 'chunks', 'movie'), { recursive: true })
  writeFileSync(join(dir, 'chunks', 'movie', `0-${old.ref.sha256}.chunk`), old.buf)

  let { tier, index } = open(dir, 10 * CHUNK)
  let report = await recoverDisk(tier, quietLogger('edge'))
  t.match(report, { loaded: 1, rows_dropped: 0, orphans_removed: 0 }, 'the old chunk is kept, under its old key')
  t.same(await read(tier, old.ref.key, 0, 99), old.buf.subarray(0, 100))
  // a rendition's chunk: its key names the rendition, its file sits in the title's directory
  const buf = Buffer.alloc(CHUNK, 9)
  const sha256 = createHash('sha256').update(buf).digest('hex')
  const ref: ChunkRef = { key: chunkKey('movie/v720', 3, sha256), contentId: 'movie', rid: 'v720', index: 3, sha256, size: CHUNK }
  t.equal(ref.key, `movie/v720/3/${sha256}`)
  tier.write(ref, buf)
  await tier.idle()
  t.ok(existsSync(join(dir, 'chunks', 'movie', `v720.3-${sha256}.chunk`)), 'a rendition chunk\'s file')
  await tier.close()
  index.close()

  ;({ tier, index } = open(dir, 10 * CHUNK))
  report = await recoverDisk(tier, quietLogger('edge'))
  t.match(report, { loaded: 2, rows_dropped: 0, orphans_removed: 0 }, 'both recovered after a restart')
  t.same(await read(tier, ref.key, CHUNK - 10, CHUNK - 1), buf.subarray(CHUNK - 10))
  t.equal(tier.index.all().find(r => r.key === ref.key)!.rid, 'v720')
  t.equal(tier.index.all().find(r => r.key === old.ref.key)!.rid, undefined)
  t.equal(await tier.purge('movie'), 2, 'a purge of the title takes its rendition')
  t.same(chunkFiles(dir), [])
  await tier.close()
  index.close()
})

t.test('a removal that fails while the new chunk\'s file is being opened: that file is closed and removed, the write counted failed', async t => {
  const dir = t.testdir()
  const { tier, index, metrics } = open(dir, CHUNK) // room for one chunk: b's insert evicts a
  await recoverDisk(tier, quietLogger('edge'))
  const [a, b] = [0, 1].map(i => chunk(i))
  tier.write(a!.ref, a!.buf)
  await tier.idle()
  t.ok(tier.has(a!.ref.key))

  const closed: boolean[] = []
  const openFile = tier.files.open.bind(tier.files)
  tier.files.open = async (path, buf) => {
    const out = await openFile(path, buf)
    const i = closed.push(false) - 1
    const close = out.fh.close.bind(out.fh)
    out.fh.close = async () => { closed[i] = true; return close() }
    return out
  }
  const remove = tier.remove.bind(tier)
  tier.remove = async (key, known) => {
    if (key === a!.ref.key) throw Object.assign(new Error('the index is gone'), { code: 'SQLITE_IOERR' })
    return remove(key, known)
  }
  tier.write(b!.ref, b!.buf)
  await tier.idle()
  t.same(closed, [true], 'the file opened for b was closed')
  t.notOk(tier.has(b!.ref.key), 'b is not stored')
  t.same(readdirSync(join(dir, 'tmp')), [], 'nothing is left half-written')
  t.same((await metrics.diskWrites.get()).values.map(v => [v.labels.result, v.value]).sort(), [['failed', 1], ['ok', 1]])
  tier.remove = remove
  await tier.close()
  index.close()
})
