import t from 'tap'
import { BLOCK_SIZE } from './block-hasher.js'
import { BLOCK_LIST, blockListHead, listFitsHead } from './block-list-header.js'

t.test('a chunk\'s list comes in its answer\'s head exactly when listFitsHead says so', async t => {
  const MiB = 1024 * 1024
  for (const size of [0, 1, 64 * MiB, 96 * MiB, 96 * MiB + 1, 128 * MiB]) {
    const crcs = Buffer.alloc(4 * Math.ceil(size / BLOCK_SIZE))
    t.equal(BLOCK_LIST in blockListHead(crcs), listFitsHead(size), `${size} bytes`)
  }
  t.ok(listFitsHead(96 * MiB))
  t.notOk(listFitsHead(96 * MiB + 1))
})
