import t from 'tap'
import { randomBytes } from 'node:crypto'
import type { PlayerClient } from './player.js'
import { SequentialReader } from './sequential-reader.js'

/** The part of PlayerClient the reader uses, over bytes in memory: the reader's own logic is under test here. */
function memoryClient(body: Buffer): PlayerClient & { discarded: number; copied: number } {
  const c = {
    size: body.length,
    position: 0,
    setPosition(p: number) { c.position = p },
    discarded: 0,
    /** fetches that came through a Buffer of their own (a sliver at the ring's end, with the rest) */
    copied: 0,
    async read(at: number, n: number) {
      await new Promise(r => setImmediate(r))
      c.copied++
      return Buffer.from(body.subarray(at, at + n))
    },
    async discard(at: number, n: number) {
      await new Promise(r => setImmediate(r))
      if (at < 0 || at + n > body.length) throw new RangeError(`bytes ${at}-${at + n - 1} are outside the body`)
      c.discarded += n
    },
    async readInto(at: number, out: Buffer) {
      await new Promise(r => setImmediate(r))
      if (at < 0 || at + out.length > body.length) throw new RangeError(`bytes ${at}-${at + out.length - 1} are outside the body`)
      body.copy(out, 0, at, at + out.length)
    },
  }
  return c as unknown as PlayerClient & { discarded: number; copied: number }
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
  const readInto = client.readInto.bind(client)
  client.readInto = async (at: number, out: Buffer) => {
    if (fail) throw new Error('503 from the edge')
    return readInto(at, out)
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

t.test('fetches that end at the ring\'s end in mid-fetch land whole: a ring that is no multiple of the fetch size', async t => {
  const body = randomBytes(1_000_003)
  const client = memoryClient(body)
  const r = new SequentialReader(client, { bufferBytes: 250_000, fetchBytes: 96_000 })
  t.teardown(() => r.close())
  t.ok((await playInTicks(r, body.length, 70_001)).equals(body), 'every byte, in order, across four wraps')
  t.ok(client.copied > 0, `a sliver left at the ring's end came with the rest, through a Buffer (${client.copied} times)`)
})

t.test('skip moves the play position by what is buffered, copying nothing; read after it gives the bytes that follow', async t => {
  const body = randomBytes(600_000)
  const client = memoryClient(body)
  const r = new SequentialReader(client, { bufferBytes: 200_000, fetchBytes: 64 * 1024 })
  t.teardown(() => r.close())
  let at = 0
  while (at < 450_000) {
    const n = await r.skip(50_000)
    t.ok(n > 0 && n <= 50_000, 'some bytes, at most those asked')
    at += n
    t.equal(r.position, at)
    t.equal(client.position, at, 'the position the client reports')
  }
  const got = await r.read(10_000)
  t.ok(got.length > 0 && got.equals(body.subarray(at, at + got.length)), 'read continues where skip stopped')
  at += got.length
  while (!r.atEnd) at += await r.skip(1_000_000)
  t.equal(at, body.length, 'skipped to the end')
  t.equal(await r.skip(10), 0, 'and nothing past it')
})

t.test('a fetch that lands in the ring after a seek is thrown away: the bytes after the seek are the seek position\'s', async t => {
  const body = randomBytes(400_000)
  const client = memoryClient(body)
  const readInto = client.readInto.bind(client)
  let hold: (() => void) | undefined
  let held = 0
  client.readInto = async (at: number, out: Buffer) => {
    if (at === 0) {
      // the first fetch waits for the test, then writes what it read into the ring, after the seek
      held++
      await new Promise<void>(res => { hold = res })
    }
    return readInto(at, out)
  }
  const r = new SequentialReader(client, { bufferBytes: 128 * 1024, fetchBytes: 64 * 1024 })
  t.teardown(() => r.close())
  while (hold === undefined) await new Promise(res => setImmediate(res))
  r.seek(200_000)
  hold()
  const got = await playInTicks(r, body.length, 10_000)
  t.equal(held, 1)
  t.ok(got.equals(body.subarray(200_000)), 'every byte from the seek position on, none of the stale fetch\'s')
})

t.test('a reader that discards keeps positions only: skip plays through, seeks restart there, read refuses', async t => {
  const body = randomBytes(1_000_000)
  const client = memoryClient(body)
  const r = new SequentialReader(client, { bufferBytes: 250_000, fetchBytes: 96_000, discard: true })
  t.teardown(() => r.close())
  await t.rejects(r.read(10), /keeps no bytes/, 'read: there are no bytes to give')
  let at = 0
  while (at < 300_000) {
    at += await r.skip(40_000)
    t.ok(r.buffered <= 250_000, 'never more ahead than the buffer')
  }
  r.seek(900_000)
  at = 900_000
  while (!r.atEnd) at += await r.skip(40_000)
  t.equal(at, body.length, 'played to the end after the seek')
  t.ok(client.discarded >= 400_000 && client.discarded <= 340_000 + 250_000 + 96_000 + 100_000, `fetched what was played and what was ahead (${client.discarded} bytes)`)
})

t.test('a count that is not a whole number of 1 or more is refused', async t => {
  const r = new SequentialReader(memoryClient(randomBytes(1000)), { bufferBytes: 256 * 1024, fetchBytes: 64 * 1024 })
  t.teardown(() => r.close())
  for (const n of [0, -1, 1.5, Number.NaN]) {
    await t.rejects(r.skip(n), RangeError, `skip(${n})`)
    await t.rejects(r.read(n), RangeError, `read(${n})`)
  }
})
