import t from 'tap'
import { createHash } from 'node:crypto'
import { TitleData } from './title.js'

const MiB = 1024 * 1024

t.test('a generated title regenerates any byte range and knows each chunk digest', async t => {
  const title = new TitleData('x', 5 * MiB, 2 * MiB)
  const parts: Buffer[] = []
  for await (const b of title.stream()) parts.push(b as Buffer)
  const all = Buffer.concat(parts)
  t.equal(all.length, 5 * MiB)
  t.equal(title.chunks, 3, 'the last chunk is short')
  t.equal(createHash('sha256').update(all).digest('hex'), title.sha256)
  for (let i = 0; i < 3; i++)
    t.equal(createHash('sha256').update(all.subarray(i * 2 * MiB, Math.min((i + 1) * 2 * MiB, all.length))).digest('hex'), title.chunkSha256[i], `chunk ${i}`)
  for (const [s, e] of [[0, 0], [MiB - 3, MiB + 2], [2 * MiB - 12345, 4 * MiB + 7], [5 * MiB - 1, 5 * MiB - 1]] as const)
    t.ok(title.bytes(s, e).equals(all.subarray(s, e + 1)), `bytes ${s}-${e}`)
  t.not(all.subarray(0, 16).toString('hex'), all.subarray(MiB, MiB + 16).toString('hex'), 'blocks differ (stamped)')
  t.ok(title.chunkSet(2).sample.equals(all.subarray(0, 2 * MiB)), 'the chunk set carries chunk 0')
})

t.test('sizes that are not whole MiB are refused by name', async t => {
  t.throws(() => new TitleData('x', MiB + 1, MiB), /must be multiples of 1 MiB/)
})
