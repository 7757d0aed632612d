import t from 'tap'
import { createHash } from 'node:crypto'
import type { Rendition } from '../../lib/media/rendition.js'
import { ChunkVerifier } from './verify.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const file = Buffer.from(Array.from({ length: 250 }, (_, i) => i))
const CHUNK = 100
const rendition = { id: 'v1', size: file.length, chunks: [0, 1, 2].map(i => sha(file.subarray(i * CHUNK, (i + 1) * CHUNK))) } as Rendition

t.test('chunks fetched whole, in any order and pieces, are checked; partial ones are unverified', async t => {
  const v = new ChunkVerifier([rendition], CHUNK)
  v.add('v1', 60, file.subarray(60, 130))   // straddles chunks 0 and 1
  v.add('v1', 0, file.subarray(0, 60))      // completes chunk 0
  v.add('v1', 0, file.subarray(0, 60))      // fetched again after a seek: not counted twice
  v.add('v1', 200, file.subarray(200, 230)) // part of the last chunk
  v.add('other', 0, Buffer.alloc(10))       // a rendition the manifest does not list
  const c = v.finish()
  t.same({ ok: c.chunksOk, bad: c.chunksBad, verified: c.bytesVerified }, { ok: 1, bad: 0, verified: 100 })
  t.equal(c.bytesUnverified, 30 + 30 + 10, 'chunk 1\'s 30 bytes, chunk 2\'s 30, the unknown rendition\'s 10')
})

t.test('a byte that differs is named with its chunk and range', async t => {
  const v = new ChunkVerifier([rendition], CHUNK)
  const bad = Buffer.from(file.subarray(100, 200))
  bad[5]! ^= 1
  v.add('v1', 100, bad)
  const c = v.finish()
  t.equal(c.chunksBad, 1)
  t.match(c.errors[0], /^v1 chunk 1 \(bytes 100-199\): SHA-256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}$/)
})

t.test('memory is bounded: past maxHeldBytes a chunk is dropped, counted unverified', async t => {
  const v = new ChunkVerifier([rendition], CHUNK, 80)
  v.add('v1', 0, file.subarray(0, 50))
  v.add('v1', 50, file.subarray(50, 100)) // would hold 100 > 80
  v.add('v1', 100, file.subarray(100, 150))
  const c = v.finish()
  t.equal(c.chunksOk, 0)
  t.equal(c.bytesUnverified, 150)
})
