import t from 'tap'
import { randomBytes } from 'node:crypto'
import { BLOCK_SIZE, blockCrcs } from '../../lib/integrity/block-hasher.js'
import { BlockCheck } from './block-check.js'

/** Cuts `buf` into pieces of random sizes, as sockets deliver them. */
function pieces(buf: Buffer, max: number): Buffer[] {
  const out: Buffer[] = []
  for (let off = 0; off < buf.length;) {
    const n = 1 + Math.floor(Math.random() * max)
    out.push(buf.subarray(off, off + n))
    off += n
  }
  return out
}

t.test('BlockCheck passes every byte of a good chunk through, in order, whatever the piece sizes', async t => {
  const chunk = randomBytes(5 * BLOCK_SIZE + 777)
  const crcs = blockCrcs(chunk)
  for (const max of [1000, BLOCK_SIZE - 1, BLOCK_SIZE, 3 * BLOCK_SIZE]) {
    const check = new BlockCheck(crcs, chunk.length, 0)
    const got = pieces(chunk, max).flatMap(p => check.push(p))
    t.equal(check.bad, -1)
    t.ok(Buffer.concat(got).equals(chunk), `pieces up to ${max} bytes`)
    t.equal(check.at, chunk.length)
  }
})

t.test('BlockCheck starting at a later block', async t => {
  const chunk = randomBytes(4 * BLOCK_SIZE)
  const check = new BlockCheck(blockCrcs(chunk), chunk.length, 2 * BLOCK_SIZE)
  const got = pieces(chunk.subarray(2 * BLOCK_SIZE), 10000).flatMap(p => check.push(p))
  t.ok(Buffer.concat(got).equals(chunk.subarray(2 * BLOCK_SIZE)))
})

t.test('BlockCheck stops before a bad block and passes nothing of it', async t => {
  const chunk = randomBytes(4 * BLOCK_SIZE + 100)
  const crcs = blockCrcs(chunk)
  for (const badAt of [10, BLOCK_SIZE * 2 + 5, 4 * BLOCK_SIZE + 99]) {
    const wrong = Buffer.from(chunk)
    wrong[badAt]! ^= 1
    const check = new BlockCheck(crcs, chunk.length, 0)
    const got: Buffer[] = []
    for (const p of pieces(wrong, 30000)) {
      got.push(...check.push(p))
      if (check.bad >= 0) break
    }
    const block = Math.floor(badAt / BLOCK_SIZE)
    t.equal(check.bad, block, `byte ${badAt}: block ${block} named`)
    t.ok(Buffer.concat(got).equals(chunk.subarray(0, block * BLOCK_SIZE)), 'exactly the blocks before it passed')
    t.same(check.push(Buffer.alloc(10)), [], 'nothing passes after a bad block')
  }
})
