import t from 'tap'
import { randomBytes } from 'node:crypto'
import { BLOCK_SIZE, blockCrcs } from './block-hasher.js'
import { BlockRun } from './block-run.js'
import { mulberry32 } from '../random.js'

const B = BLOCK_SIZE

t.test('whole verified blocks go on, however the pieces fall; a block split across pieces is gathered', async t => {
  const chunk = randomBytes(3 * B + 100)
  const crcs = blockCrcs(chunk)
  for (const cut of [1, 1000, B - 1, B, B + 7, 3 * B]) {
    const run = new BlockRun(crcs, chunk.length, 0)
    const out: Buffer[] = []
    // what each piece lets go on ends only at a block boundary (or the chunk's end): nothing of a block before its check
    let end = 0
    let whole = true
    for (let at = 0; at < chunk.length; at += cut) {
      const got = run.push(chunk.subarray(at, Math.min(at + cut, chunk.length)))
      for (const b of got) end += b.length
      whole &&= end % B === 0 || end === chunk.length
      out.push(...got)
    }
    t.equal(run.bad, -1)
    t.ok(Buffer.concat(out).equals(chunk), `pieces of ${cut}: every byte, in order`)
    t.ok(whole, `pieces of ${cut}: whole blocks only`)
    t.ok(out.every(b => b.length > 0), 'no empty piece')
  }
})

t.test('a bad block split across pieces: its start, held from the first piece, never goes on', async t => {
  const chunk = randomBytes(2 * B)
  const crcs = blockCrcs(chunk)
  const lie = Buffer.from(chunk)
  lie[B + B / 2 + 3] ^= 1
  const run = new BlockRun(crcs, chunk.length, 0)
  const first = run.push(lie.subarray(0, B + 100))
  t.same(first.map(b => b.length), [B], 'block 0 goes on; block 1 is held')
  t.same(run.push(lie.subarray(B + 100)), [], 'block 1 fails: none of it goes on')
  t.equal(run.bad, 1)
  t.equal(run.at, B)
})

t.test('a bad block stops the run at its first byte: what came before it goes on', async t => {
  const chunk = randomBytes(3 * B)
  const crcs = blockCrcs(chunk)
  const lie = Buffer.from(chunk)
  lie[B + 5] ^= 1
  const run = new BlockRun(crcs, chunk.length, 0)
  const out = run.push(lie)
  t.equal(run.bad, 1)
  t.equal(run.at, B, 'the next owner is asked from block 1')
  t.ok(Buffer.concat(out).equals(chunk.subarray(0, B)))
})

t.test('a read from block 2 verifies against block 2; a read that ends inside a block hands the rest on unverified', async t => {
  const chunk = randomBytes(4 * B)
  const run = new BlockRun(blockCrcs(chunk), chunk.length, 2 * B)
  t.same(run.push(chunk.subarray(2 * B, 3 * B + 10)).map(b => b.length), [B])
  t.equal(run.rest()?.length, 10)
  t.equal(run.at, 3 * B + 10)
})

/**
 * The piece cuts' seed: a new one each run (more cuts tried over time), named
 * in the plan so a failing run can be replayed with BLOCK_RUN_SEED (the
 * whole file, in order: a subset draws the cuts in another order).
 */
const SEED = process.env.BLOCK_RUN_SEED === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(process.env.BLOCK_RUN_SEED)
if (!Number.isSafeInteger(SEED)) throw new Error(`BLOCK_RUN_SEED must be an integer, not ${JSON.stringify(process.env.BLOCK_RUN_SEED)}`)
t.comment(`piece cuts from seed ${SEED} (BLOCK_RUN_SEED=${SEED} replays them)`)
const random = mulberry32(SEED)

/** Cuts `buf` into pieces of random sizes, as sockets deliver them. */
function pieces(buf: Buffer, max: number): Buffer[] {
  const out: Buffer[] = []
  for (let off = 0; off < buf.length;) {
    const n = 1 + Math.floor(random() * max)
    out.push(buf.subarray(off, off + n))
    off += n
  }
  return out
}

t.test('every byte of a good chunk goes on, in order, whatever the piece sizes', async t => {
  const chunk = randomBytes(5 * BLOCK_SIZE + 777)
  const crcs = blockCrcs(chunk)
  for (const max of [1000, BLOCK_SIZE - 1, BLOCK_SIZE, 3 * BLOCK_SIZE]) {
    const run = new BlockRun(crcs, chunk.length, 0)
    const got = pieces(chunk, max).flatMap(p => run.push(p))
    t.equal(run.bad, -1)
    t.ok(Buffer.concat(got).equals(chunk), `pieces up to ${max} bytes`)
    t.equal(run.at, chunk.length)
  }
})

t.test('from a later block, in random pieces', async t => {
  const chunk = randomBytes(4 * BLOCK_SIZE)
  const run = new BlockRun(blockCrcs(chunk), chunk.length, 2 * BLOCK_SIZE)
  const got = pieces(chunk.subarray(2 * BLOCK_SIZE), 10000).flatMap(p => run.push(p))
  t.ok(Buffer.concat(got).equals(chunk.subarray(2 * BLOCK_SIZE)))
})

t.test('a bad block anywhere: exactly the blocks before it go on, nothing of it or after it', async t => {
  const chunk = randomBytes(4 * BLOCK_SIZE + 100)
  const crcs = blockCrcs(chunk)
  for (const badAt of [10, BLOCK_SIZE * 2 + 5, 4 * BLOCK_SIZE + 99]) {
    const wrong = Buffer.from(chunk)
    wrong[badAt]! ^= 1
    const run = new BlockRun(crcs, chunk.length, 0)
    const got: Buffer[] = []
    for (const p of pieces(wrong, 30000)) {
      got.push(...run.push(p))
      if (run.bad >= 0) break
    }
    const block = Math.floor(badAt / BLOCK_SIZE)
    t.equal(run.bad, block, `byte ${badAt}: block ${block} named`)
    t.ok(Buffer.concat(got).equals(chunk.subarray(0, block * BLOCK_SIZE)), 'exactly the blocks before it went on')
    t.same(run.push(Buffer.alloc(10)), [], 'nothing goes on after a bad block')
  }
})

t.test('pieces that follow each other in one memory (a relay slab): one view per piece, not the held start and the rest apart', async t => {
  const slab = randomBytes(8 * BLOCK_SIZE)
  const run = new BlockRun(blockCrcs(slab), slab.length, 0)
  // as a slab fills: a short first read after the answer's head, then reads that end off block boundaries
  // (a block over three pieces too: 2 * BLOCK_SIZE + 100 to 3 * BLOCK_SIZE + 17)
  const cuts = [1000, BLOCK_SIZE + 5000, 2 * BLOCK_SIZE + 100, 2 * BLOCK_SIZE + 30000, 3 * BLOCK_SIZE + 17, 6 * BLOCK_SIZE, 8 * BLOCK_SIZE]
  let from = 0
  let at = 0
  for (const to of cuts) {
    const views = run.push(slab.subarray(from, to))
    if (to < BLOCK_SIZE || to === 2 * BLOCK_SIZE + 30000) t.same(views, [], 'no whole block completed by this piece')
    else {
      t.equal(views.length, 1, `piece to ${to}: one view`)
      t.equal(views[0]!.byteOffset - slab.byteOffset, at, 'from where the last view ended')
      t.ok(views[0]!.equals(slab.subarray(at, at + views[0]!.length)))
      at += views[0]!.length
    }
    from = to
  }
  t.equal(at, slab.length)
})

t.test('a block past the end of the list fails as a bad block, not as an exception', async t => {
  const chunk = randomBytes(3 * BLOCK_SIZE)
  const short = blockCrcs(chunk.subarray(0, 2 * BLOCK_SIZE))
  const run = new BlockRun(short, chunk.length, 0)
  const got = run.push(chunk)
  t.equal(run.bad, 2)
  t.ok(Buffer.concat(got).equals(chunk.subarray(0, 2 * BLOCK_SIZE)))
})

t.test('a block held over several pieces of one memory is handed on, unverified, as one view at the read\'s end', async t => {
  const chunk = randomBytes(2 * BLOCK_SIZE)
  const run = new BlockRun(blockCrcs(chunk), chunk.length, 0)
  t.same(run.push(chunk.subarray(0, 1000)), [])
  t.same(run.push(chunk.subarray(1000, 5000)), [])
  const rest = run.rest()!
  t.equal(rest.byteOffset, chunk.byteOffset, 'a view of the pieces\' memory, not a copy')
  t.ok(rest.equals(chunk.subarray(0, 5000)))
})

t.test('bytes past the chunk\'s end fail as a bad block, not as an exception', async t => {
  const chunk = randomBytes(BLOCK_SIZE + 100)
  const run = new BlockRun(blockCrcs(chunk), chunk.length, 0)
  const got = run.push(Buffer.concat([chunk, Buffer.alloc(10)]))
  t.ok(Buffer.concat(got).equals(chunk), 'the chunk\'s blocks go on')
  t.equal(run.bad, 2, 'the bytes after its end: the first block past it')
  t.equal(run.at, chunk.length)
})
