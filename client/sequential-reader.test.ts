import t from 'tap'
import { randomBytes } from 'node:crypto'
import type { PlayerClient } from './player.js'
import { SequentialReader } from './sequential-reader.js'

/** The part of PlayerClient the reader uses, over bytes in memory: the reader's own logic is under test here. */
function memoryClient(body: Buffer): PlayerClient {
  const c = {
    size: body.length,
    position: 0,
    setPosition(p: number) { c.position = p },
    async read(at: number, n: number) {
      await new Promise(r => setImmediate(r))
      return body.subarray(at, at + n)
    },
  }
  return c as unknown as PlayerClient
}

/**
 * As the load tester's players do: wait until `n` bytes are buffered, then take them. A deadlock is a
 * wait that makes no progress for `stallMs`: a bound on the whole run would fail a slow machine, not a
 * stuck reader (1-byte ticks over 1 MiB are a million reads).
 */
async function playInTicks(r: SequentialReader, size: number, n: number, stallMs = 5000): Promise<Buffer> {
  const parts: Buffer[] = []
  while (!r.atEnd) {
    const since = Date.now()
    while (r.buffered < Math.min(n, size - r.position)) {
      if (Date.now() - since > stallMs) throw new Error(`stuck at ${r.position} with ${r.buffered} bytes buffered`)
      await new Promise(res => setTimeout(res, 1))
    }
    parts.push(await r.read(n))
  }
  return Buffer.concat(parts)
}

t.test('a buffer no larger than one fetch never deadlocks a player that waits for a tick of bytes', async t => {
  const body = randomBytes(2 * 1024 * 1024 + 123)
  // what readerSizes gives for a short buffer: fetchBytes = bufferBytes
  const r = new SequentialReader(memoryClient(body), { bufferBytes: 256 * 1024, fetchBytes: 256 * 1024 })
  t.teardown(() => r.close())
  const got = await playInTicks(r, body.length, 100_000)
  t.ok(got.equals(body), 'every byte, in order')
})

t.test('ticks of any size up to three quarters of the buffer play through', async t => {
  for (const tick of [1, 4096, 65_536, 190_000]) {
    // past the ring more than once either way; 1-byte ticks over 1 MiB would be a million reads
    const body = randomBytes(tick === 1 ? 320 * 1024 : 1024 * 1024)
    const r = new SequentialReader(memoryClient(body), { bufferBytes: 256 * 1024, fetchBytes: 128 * 1024 })
    const got = await playInTicks(r, body.length, tick)
    await r.close()
    t.ok(got.equals(body), `ticks of ${tick} bytes`)
  }
})

t.test('a failed fetch is visible at once as failure, and a seek restarts fetching', async t => {
  const body = randomBytes(300_000)
  let fail = true
  const client = memoryClient(body)
  const read = client.read.bind(client)
  client.read = async (at: number, n: number) => {
    if (fail) throw new Error('503 from the edge')
    return read(at, n)
  }
  const r = new SequentialReader(client, { bufferBytes: 128 * 1024, fetchBytes: 64 * 1024 })
  t.teardown(() => r.close())
  const until = Date.now() + 5000
  while (!r.failure && Date.now() < until) await new Promise(res => setTimeout(res, 1))
  t.match(r.failure?.message, /503/)
  fail = false
  r.seek(1000)
  t.equal(r.failure, undefined)
  const got = await r.read(5000)
  t.ok(got.length > 0 && got.equals(body.subarray(1000, 1000 + got.length)), 'bytes from the seek position')
})
