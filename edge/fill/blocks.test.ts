import t from 'tap'
import { createHash } from 'node:crypto'
import { BLOCK_SIZE as B, blockCrcs, blockListDigest } from '../../lib/integrity/block-hasher.js'
import type { ChunkRef } from '../title.js'
import { BlockGate } from './blocks.js'

/** A gate holding the block list of three blocks, and the same bytes with byte `at` hurt. */
function listedGate(at: number) {
  const bytes = Buffer.alloc(3 * B, 7)
  const crcs = blockCrcs(bytes)
  const ref: ChunkRef = { key: 'k', contentId: 'm', index: 0, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, blocks: blockListDigest(crcs) }
  const gate = new BlockGate(ref, true)
  gate.listed(crcs)
  const hurt = Buffer.from(bytes)
  hurt[at]! ^= 1
  return { gate, hurt }
}

t.test('blocks a source verified against the list pass as they are; the rest are checked', async t => {
  const { gate, hurt } = listedGate(B + 1)
  t.equal(gate.release(hurt, 0, 3 * B, 2 * B), 3 * B, 'the source said blocks 0-1 passed: not checked again (it checked them against this list); block 2 is, and passes')
  t.throws(() => gate.release(hurt, 0, 3 * B, B), { code: 'CDN_ERR_UPSTREAM_DIGEST', message: /block 1/ }, 'past what the source verified, the gate checks')
  t.throws(() => gate.release(hurt, 0, 3 * B), { message: /block 1/ }, 'a body that verified nothing: every block is checked')
})

t.test('a source vouches only for blocks from where its request started', async t => {
  const { gate, hurt } = listedGate(5)
  t.throws(() => gate.release(hurt, 0, 3 * B, 2 * B, B), { message: /block 0/ }, 'block 0 is before the request that verified [B, 2B): checked')
})
