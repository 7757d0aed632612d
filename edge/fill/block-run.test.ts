import t from 'tap'
import { randomBytes } from 'node:crypto'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import { BlockRun } from './block-run.js'

const B = 65536

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
