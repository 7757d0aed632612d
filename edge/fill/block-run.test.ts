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
    for (let at = 0; at < chunk.length; at += cut) out.push(...run.push(chunk.subarray(at, Math.min(at + cut, chunk.length))))
    t.equal(run.bad, -1)
    t.ok(Buffer.concat(out).equals(chunk), `pieces of ${cut}: every byte, in order`)
    t.same(out.map(b => b.length), [B, B, B, 100], 'block by block')
  }
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
