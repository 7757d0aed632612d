import t from 'tap'
import { Line } from './line.js'

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
