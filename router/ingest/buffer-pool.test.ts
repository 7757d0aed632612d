import t from 'tap'
import { BufferPool } from './buffer-pool.js'

t.test('at most `max` buffers are lent; waiters are served first come, first served, and reuse them', async t => {
  const pool = new BufferPool(1024, 2)
  const a = await pool.acquire()
  const b = await pool.acquire()
  t.equal(pool.inUse, 2)
  const order: string[] = []
  const c = pool.acquire().then(x => { order.push('c'); return x })
  const d = pool.acquire().then(x => { order.push('d'); return x })
  const bufA = a.buf
  const bufB = b.buf
  a.release()
  t.equal((await c).buf, bufA, 'the released buffer is handed on, not a new one')
  b.release()
  t.equal((await d).buf, bufB)
  t.same(order, ['c', 'd'])
  t.equal(pool.inUse, 2)
})

t.test('an aborted wait leaves the queue', async t => {
  const pool = new BufferPool(16, 1)
  const a = await pool.acquire()
  const buf = a.buf
  const ac = new AbortController()
  const waiting = pool.acquire(ac.signal)
  ac.abort(new Error('client gone'))
  await t.rejects(waiting, /client gone/)
  a.release()
  t.equal((await pool.acquire()).buf, buf, 'the buffer went back to the pool, not to the aborted waiter')
})

t.test('a lease is settled once: a second release or retire throws, and the buffer is lent to one holder only', async t => {
  const pool = new BufferPool(16, 4)
  const a = await pool.acquire()
  const buf = a.buf
  a.release()
  t.throws(() => a.release(), /settled twice/)
  t.throws(() => a.retire(), /settled twice/)
  t.throws(() => a.buf, /used after it was given back/, 'the buffer cannot be reached through a settled lease')
  t.equal(pool.inUse, 0)
  t.equal(pool.idle, 1, 'the buffer is in the pool once')
  const x = await pool.acquire()
  const y = await pool.acquire()
  t.equal(x.buf, buf)
  t.not(y.buf, buf, 'the next holder gets another buffer')
})

t.test('a retired buffer is never lent again; a new one takes its place, also for a waiter', async t => {
  const pool = new BufferPool(16, 1)
  const a = await pool.acquire()
  const old = a.buf
  const waiting = pool.acquire()
  a.retire()
  const b = await waiting
  t.not(b.buf, old, 'the waiter got a new buffer')
  t.equal(pool.inUse, 1)
  const second = b.buf
  b.retire()
  t.equal(pool.inUse, 0)
  t.equal(pool.idle, 0, 'nothing kept')
  const c = await pool.acquire()
  t.not(c.buf, old)
  t.not(c.buf, second)
})
