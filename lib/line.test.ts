import t from 'tap'
import { Line } from './line.js'
import { Cancel } from './cancel.js'

t.test('first come first served; one that waits too long leaves the line with its error', async t => {
  const line = new Line<string>()
  const a = line.wait(1, 1000, () => new Error('late a'))
  const b = line.wait(2, 1000, () => new Error('late b'))
  const c = line.wait(3, 50, () => new Error('late c'))
  t.equal(line.length, 3)
  t.equal(line.firstNeed, 1)
  await t.rejects(c, { message: 'late c' })
  t.equal(line.length, 2, 'c left the line')
  line.serve('x')
  t.equal(await a, 'x')
  t.equal(line.firstNeed, 2)
  line.serve('y')
  t.equal(await b, 'y')
  t.equal(line.firstNeed, undefined)
  line.serve('nobody') // no one waits: nothing happens
})

t.test('onLeave runs after one leaves the line late', async t => {
  let left = 0
  const line = new Line<string>(() => { left++ })
  const a = line.wait(1, 30, () => new Error('late a'))
  await t.rejects(a, { message: 'late a' })
  t.equal(left, 1)
  t.equal(line.length, 0)
})

t.test('a wait given a Cancel leaves the line at once when cancelled: onLeave runs, the one behind it is next, a later serve skips it', async t => {
  let left = 0
  const line = new Line<string>(() => { left++ })
  const stop = new Cancel()
  const a = line.wait(8, 5000, () => new Error('late a'), stop)
  const b = line.wait(1, 5000, () => new Error('late b'))
  t.equal(line.firstNeed, 8)
  stop.cancel(new Error('the client left'))
  await t.rejects(a, { message: 'the client left' }, 'at once, not after its 5 s')
  t.equal(line.length, 1, 'a left the line')
  t.equal(line.firstNeed, 1, 'b is first now')
  t.equal(left, 1, 'onLeave ran: b may fit where a did not')
  line.serve('x')
  t.equal(await b, 'x')
  // a Cancel that fired before the wait: it fails at once and never joins the line
  await t.rejects(line.wait(1, 5000, () => new Error('late c'), stop), { message: 'the client left' })
  t.equal(line.length, 0)
  // served, then cancelled: nothing happens (the listener went with the serve)
  const again = new Cancel()
  const d = line.wait(1, 5000, () => new Error('late d'), again)
  line.serve('y')
  t.equal(await d, 'y')
  again.cancel(new Error('too late to matter'))
  t.equal(line.length, 0)
  t.equal(left, 1)
})
