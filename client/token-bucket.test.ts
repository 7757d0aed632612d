import t from 'tap'
import { TokenBucket } from './token-bucket.js'

/** The link a load-test viewer reads through: exact on a fake clock, and "1 Mb/s" meant on a real one. */
t.test('on a fake clock: the burst at once, then exactly the rate', async t => {
  let now = 0
  const b = new TokenBucket(125_000, 16_384, () => now) // 1 Mb/s
  t.equal(b.spend(16_384), 0, 'the burst passes at once')
  t.equal(b.spend(125_000), 1000, '125,000 bytes more: one second')
  now = 500
  t.equal(b.spend(0), 500, 'half a second later, half the debt is left')
  now = 1000
  t.equal(b.spend(12_500), 100, 'repaid at 1 s; 12.5 kB more is 100 ms')
  now = 60_000
  t.equal(b.spend(16_384), 0, 'an idle link refills to the burst only')
  t.equal(b.spend(1), 0.008, 'and not beyond it')
})

t.test('concurrent takes queue in call order', async t => {
  let now = 0
  const b = new TokenBucket(1000, 1000, () => now)
  t.equal(b.spend(1000), 0)
  t.equal(b.spend(500), 500)
  t.equal(b.spend(500), 1000, 'the second waits for the first one\'s debt too')
})

t.test('bad rates are refused by name', async t => {
  t.throws(() => new TokenBucket(0), /link rate above 0/)
  t.throws(() => new TokenBucket(Infinity), /link rate above 0/)
  t.throws(() => new TokenBucket(1000, 0), /burst above 0/)
})

t.test('1 Mb/s on the real clock is 1 Mb/s', async t => {
  const link = TokenBucket.ofLink(1_000_000)
  t.equal(link.bytesPerSecond, 125_000)
  // 16 KiB pieces, as a response body arrives; 2 s of link after the burst
  const piece = 16 * 1024
  const total = link.burstBytes + 250_000
  const t0 = performance.now()
  let sent = 0
  while (sent < total) {
    await link.take(Math.min(piece, total - sent))
    sent += Math.min(piece, total - sent)
  }
  const s = (performance.now() - t0) / 1000
  const bps = ((total - link.burstBytes) * 8) / s
  // the last take returns once its bytes are paid for, so the time is (total - burst) / rate; timers only ever fire late
  t.ok(bps <= 1_000_000 * 1.01, `never faster: ${(bps / 1e6).toFixed(3)} Mb/s over ${s.toFixed(2)} s`)
  t.ok(bps >= 1_000_000 * 0.95, `nor much slower on a busy machine: ${(bps / 1e6).toFixed(3)} Mb/s`)
})

t.test('a take waiting for the link ends with an abort', async t => {
  const link = new TokenBucket(1000, 1000)
  await link.take(1000)
  const ac = new AbortController()
  const p = link.take(100_000, ac.signal)
  ac.abort()
  await t.rejects(p, { name: 'AbortError' })
})

t.test('a link that changes rate: what was owed is repaid at the new rate', async t => {
  let now = 0
  const b = new TokenBucket(1000, 1000, () => now)
  b.spend(1000)
  t.equal(b.spend(1000), 1000)
  now = 500
  b.setRate(100)
  t.equal(b.spend(0), 5000, '500 bytes still owed, at 100 bytes/s')
  t.throws(() => b.setRate(0), /link rate above 0/)
})
