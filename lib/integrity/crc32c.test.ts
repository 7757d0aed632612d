import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { crc32c, CRC32C_ADDON_MISSING, CRC32C_IMPLEMENTATION, portableCrc32c, softwareCrc32c } from './crc32c.js'

// RFC 3720, B.4: CRC32C test vectors
const VECTORS: Array<[string, Buffer, number]> = [
  ['32 bytes of zeros', Buffer.alloc(32, 0), 0x8a9136aa],
  ['32 bytes of 0xff', Buffer.alloc(32, 0xff), 0x62a8ab43],
  ['32 incrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
  ['32 decrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
  ['"123456789"', Buffer.from('123456789'), 0xe3069283],
]

t.test('make build gives the addon with the CRC32 instruction where the CPU has it', async (t) => {
  const sse42 = process.arch === 'x64' && /\bsse4_2\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))
  t.equal(CRC32C_IMPLEMENTATION, sse42 ? 'addon (sse4.2)' : 'addon (software)', CRC32C_ADDON_MISSING ?? 'native/crc32c.c was built')
})

t.test("the RFC 3720 vectors, by the addon's both loops and @node-rs/crc32", async (t) => {
  for (const [what, data, want] of VECTORS) {
    t.equal(crc32c(data), want, what)
    if (softwareCrc32c) t.equal(softwareCrc32c(data), want, `${what}, table loop`)
    t.equal(portableCrc32c(data), want, `${what}, @node-rs/crc32`)
  }
})

t.test('every length and alignment around the three-stream blocks agrees with @node-rs/crc32', async (t) => {
  const src = randomBytes(65536 + 8)
  // lengths around 8 bytes, 3 × 256 and 3 × 8 KiB (where the streams are joined), and a whole 64 KiB block
  const lengths = [0, 1, 7, 8, 9, 255, 767, 768, 769, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 3 * 8192 + 768 + 5, 2 * 3 * 8192, 65536 - 9, 65536]
  let checked = 0
  for (const n of lengths)
    for (let off = 0; off < 9; off++) {
      const piece = src.subarray(off, off + n)
      const want = portableCrc32c(piece)
      if (crc32c(piece) !== want || (softwareCrc32c && softwareCrc32c(piece) !== want)) t.fail(`length ${n} at offset ${off}`)
      checked++
    }
  t.equal(checked, lengths.length * 9, 'every case checked')
})

t.test('a CRC continued over a second piece equals the CRC of both', async (t) => {
  const data = randomBytes(65536)
  for (const cut of [0, 1, 100, 24576, 40000, 65536]) {
    const first = crc32c(data.subarray(0, cut))
    t.equal(crc32c(data.subarray(cut), first), crc32c(data), `cut at ${cut}`)
    t.equal(crc32c(data.subarray(cut), first), portableCrc32c(data.subarray(cut), portableCrc32c(data.subarray(0, cut))))
  }
})

t.test('anything but bytes is a TypeError, not a CRC of something else', async (t) => {
  t.throws(() => crc32c('123456789' as unknown as Uint8Array), TypeError)
  t.throws(() => crc32c(Buffer.from('x'), 'seed' as unknown as number), TypeError)
  // wider elements would be read as some other count of bytes: refused, not guessed
  t.throws(() => crc32c(new Uint32Array(4) as unknown as Uint8Array), TypeError)
})
