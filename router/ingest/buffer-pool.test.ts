import t from 'tap'
import { BufferPool } from './buffer-pool.js'

t.test('at most `max` buffers exist; waiters are served first come, first served, and reuse them', async t => {
  const pool = new BufferPool(1024, 2)
  const a = await pool.acquire()
  const b = await pool.acquire()
  t.equal(pool.inUse, 2)
  const order: string[] = []
  const c = pool.acquire().then(x => { order.push('c'); return x })
  const d = pool.acquire().then(x => { order.push('d'); return x })
  pool.release(a)
  t.equal(await c, a, 'the released buffer is handed on, not a new one')
  pool.release(b)
  t.equal(await d, b)
  t.same(order, ['c', 'd'])
  t.equal(pool.inUse, 2)
})

t.test('an aborted wait leaves the queue', async t => {
  const pool = new BufferPool(16, 1)
  const a = await pool.acquire()
  const ac = new AbortController()
  const waiting = pool.acquire(ac.signal)
  ac.abort(new Error('client gone'))
  await t.rejects(waiting, /client gone/)
  pool.release(a)
  t.equal(await pool.acquire(), a, 'the buffer went back to the pool, not to the aborted waiter')
})
