import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { randomFillSync } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { populate, recycle, sendPages, spliceFd, ZERO_COPY_AVAILABLE, zeroCopyable, zeroCopyChunk } from './zero-copy.js'

/**
 * The splice addon against real loopback sockets: every byte arrives once and
 * in order however full the socket is, and memory recycled while the kernel
 * still holds its pages does not change the bytes in flight.
 */
const MiB = 1024 ** 2

interface Pair { sender: net.Socket; receiver: net.Socket }

async function pair(t: { teardown(fn: () => void): void }): Promise<Pair> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const receiver = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [sender] = await accepted
  receiver.pause()
  t.teardown(() => { sender.destroy(); receiver.destroy(); server.close() })
  return { sender, receiver }
}

/** reads exactly `n` bytes from a paused socket */
async function take(s: net.Socket, n: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let got = 0
  s.resume()
  for await (const d of s as AsyncIterable<Buffer>) {
    parts.push(d)
    got += d.length
    if (got >= n) break
  }
  return Buffer.concat(parts).subarray(0, n)
}

t.test('make build gives the splice addon', async t => {
  t.ok(ZERO_COPY_AVAILABLE, 'native/splice.c was built (make native)')
})

t.test('only memory from zeroCopyChunk may be spliced', async t => {
  const zc = zeroCopyChunk(4 * MiB)
  t.ok(zeroCopyable(zc.subarray(MiB, 2 * MiB)), 'a view of it')
  t.notOk(zeroCopyable(Buffer.allocUnsafeSlow(4 * MiB)), 'ordinary memory')
  t.throws(() => sendPages(0, Buffer.alloc(16)), /not memory from zeroCopyChunk/)
})

t.test('a spliced range arrives whole and in order, however full the socket gets', async t => {
  const { sender, receiver } = await pair(t)
  const buf = randomFillSync(zeroCopyChunk(16 * MiB))
  const fd = spliceFd(sender)!
  t.type(fd, 'number')
  const reading = take(receiver, 12 * MiB)
  let at = MiB
  let fullSeen = 0
  for (let i = 0; i < 100_000 && at < 13 * MiB; i++) {
    const n = sendPages(fd, buf.subarray(at, Math.min(at + MiB, 13 * MiB)))
    if (n < 0) { t.fail(`send failed: ${n}`); break }
    if (n < MiB && at + n < 13 * MiB) { fullSeen++; await new Promise(r => setImmediate(r)) }
    at += n
  }
  t.equal(at, 13 * MiB, 'every byte was taken')
  t.ok(Buffer.from(await reading).equals(buf.subarray(MiB, 13 * MiB)), 'the receiver got exactly the range, once')
  t.ok(fullSeen > 0, 'the socket was full at least once (partial sends were exercised)')
})

/**
 * 32 MiB of random zero-copy memory spliced into a socket whose peer does not
 * read: the pages the socket took stay in the kernel, by reference to buf's.
 * `queued`: the bytes it took; `offered`: the end of the last piece offered
 * (sendPages marks a piece before its send).
 */
async function inFlight(t: Parameters<typeof pair>[0]): Promise<{ buf: Buffer; original: Buffer; queued: number; offered: number; receiver: net.Socket }> {
  const { sender, receiver } = await pair(t)
  const buf = zeroCopyChunk(32 * MiB)
  randomFillSync(buf)
  const original = Buffer.from(buf)
  const fd = spliceFd(sender)!
  let queued = 0
  let offered = 0
  for (let i = 0; i < 64 && queued < buf.length; i++) {
    offered = Math.min(queued + MiB, buf.length)
    const n = sendPages(fd, buf.subarray(queued, offered))
    if (n <= 0) break
    queued += n
  }
  return { buf, original, queued, offered, receiver }
}

t.test('memory recycled and rewritten while its pages are in flight: the bytes in flight do not change', async t => {
  const { buf, original, queued, receiver } = await inFlight(t)
  t.ok(queued > 64 * 1024, `the kernel holds ${queued} bytes of buf`)
  t.ok(recycle(buf), 'recycled')
  buf.fill(0xaa)
  t.ok((await take(receiver, queued)).equals(original.subarray(0, queued)), 'the receiver got the bytes as they were when sent')
  t.equal(buf[0], 0xaa, 'and the memory holds what was written after')
})

t.test('populate over pages in flight, and overlapping a recycle of them: the bytes in flight and the memory do not change', { skip: ZERO_COPY_AVAILABLE ? false : 'the splice addon is not built' }, async t => {
  const { buf, original, queued, offered, receiver } = await inFlight(t)
  t.ok(queued > 64 * 1024, `the kernel holds ${queued} bytes of buf`)
  // a touch of a page in flight writes it (an add of zero): nothing the kernel holds may change
  t.equal(await populate(buf), true, 'populated while its pages were in flight')
  t.ok(buf.equals(original), 'the memory is as it was')
  // a populate that may still run when the owner recycles (likely, not certain: the pool thread may not have started):
  // each page it touches is the old one or the fresh (zero) one
  const faulting = populate(buf)
  t.ok(recycle(buf), 'recycled meanwhile')
  t.equal(await faulting, true, 'populate done')
  // recycled: every page of every piece offered to the socket
  const keptFrom = Math.ceil(offered / 4096) * 4096
  t.ok(keptFrom < buf.length, 'some pages were never offered')
  t.ok(buf.subarray(0, offered).every(b => b === 0), 'the pages recycled read zero (fresh ones), none the old bytes')
  t.ok(buf.subarray(keptFrom).equals(original.subarray(keptFrom)), 'the pages never offered are as they were')
  t.ok((await take(receiver, queued)).equals(original.subarray(0, queued)), 'the receiver got the bytes as they were when sent')
})

t.test('a socket whose peer is gone: a negative errno, not a throw', async t => {
  const { sender, receiver } = await pair(t)
  const fd = spliceFd(sender)!
  receiver.resetAndDestroy()
  await once(sender, 'end').catch(() => {})
  const buf = zeroCopyChunk(2 * MiB)
  let n = 0
  for (let i = 0; i < 50 && n >= 0; i++) {
    n = sendPages(fd, buf)
    if (n >= 0) await new Promise(r => setTimeout(r, 10))
  }
  t.ok(n < 0, `the send failed with -errno (${n})`)
})

t.test('no fd for a destroyed socket', async t => {
  const { sender } = await pair(t)
  sender.destroy()
  t.equal(spliceFd(sender), undefined)
  t.equal(spliceFd(null), undefined)
})

const populateSkip = !ZERO_COPY_AVAILABLE ? 'the splice addon is not built' : false
t.test('populate faults memory in on a pool thread, changing no byte, and refuses other memory', { skip: populateSkip }, async t => {
  const size = 64 * 1024 * 1024
  // residency is read in a process of its own: here, other tests' memory may be unmapped meanwhile
  const script = `import { populate, zeroCopyChunk } from ${JSON.stringify(new URL('./zero-copy.js', import.meta.url).href)}
    const buf = zeroCopyChunk(${size}); const rss = process.memoryUsage().rss
    const done = await populate(buf); console.log(JSON.stringify({ done, grew: process.memoryUsage().rss - rss }))`
  const child = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { done: boolean; grew: number }
  t.equal(child.done, true, 'done')
  t.ok(child.grew >= size * 0.9, `its pages are resident after it (RSS +${(child.grew / 2 ** 20).toFixed(0)} MiB, no byte changed)`)
  const buf = zeroCopyChunk(size)
  buf[4096 * 100] = 7
  t.equal(await populate(buf), true, 'done')
  let sum = 0
  for (let off = 0; off < size; off += 4096) sum += buf[off]!
  t.equal(sum, 7, 'no byte changed: the byte written before is there, every other page reads zero')
  // its owner writes while the pool thread faults the same pages in: no write is lost (the touch is an atomic add of zero).
  // The whole range in one call, the owner writing from the end: the two cross somewhere in the middle
  const raw = (await import('node:module')).createRequire(import.meta.url)('../../native/splice.node') as { populate(b: Buffer, o: number, l: number): Promise<number> }
  const racing = zeroCopyChunk(size)
  const faulting = raw.populate(racing, 0, size)
  for (let off = size - 4096; off >= 0; off -= 4096) racing[off] = 1 + (off / 4096) % 251
  t.equal(await faulting, 0, 'done while its owner wrote')
  let lost = 0
  for (let off = 0; off < size; off += 4096) if (racing[off] !== 1 + (off / 4096) % 251) lost++
  t.equal(lost, 0, 'every byte the owner wrote meanwhile is there')
  t.equal(await populate(Buffer.alloc(8192)), false, 'ordinary memory: refused, the caller faults it in itself')
  t.equal(await populate(buf.subarray(4096)), false, 'part of a Buffer: refused')
  // the addon's own checks, below the module's
  t.throws(() => raw.populate(buf, 1, 4096), /offset is not a multiple of the page size/)
  t.throws(() => raw.populate(buf, 0, size + 1), /outside the buffer/)
  t.throws(() => raw.populate(Buffer.from('xy'), 0, 1), /page-aligned/)
})
