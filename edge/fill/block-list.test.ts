import t from 'tap'
import { HeadLists } from './block-list.js'

/** HeadLists: a fill's block list from its own request or a data answer's head, whichever comes first. */
const turn = () => new Promise<void>(resolve => setImmediate(resolve))
const list = (n: number) => Buffer.alloc(8, n)

t.test('a head list settles the wait; the own request is then told it is decided', async t => {
  const h = new HeadLists()
  let decided: () => boolean = () => false
  let answer!: (b: Buffer) => void
  const p = h.race('k', d => { decided = d; return new Promise<Buffer>(resolve => { answer = resolve }) })
  t.ok(h.waiting('k'))
  t.notOk(decided())
  h.offer('k', list(1))
  t.same(await p, list(1), 'the head\'s list')
  await turn()
  t.ok(decided(), 'the own request sees the race decided')
  t.notOk(h.waiting('k'), 'nothing waits any more')
  answer(list(2))
  t.same(await p, list(1), 'its later answer changes nothing')
  h.offer('k', list(3))
})

t.test('the own request first: an offer after it is ignored; a failure rejects the wait', async t => {
  const h = new HeadLists()
  const p = h.race('k', () => Promise.resolve(list(2)))
  t.same(await p, list(2))
  await turn()
  t.notOk(h.waiting('k'))
  h.offer('k', list(9))
  t.same(await p, list(2))
  const q = h.race('f', () => Promise.reject(new Error('no owner')))
  await t.rejects(q, /no owner/)
  await turn()
  t.notOk(h.waiting('f'))
})

t.test('a retry replaces the wait: the first one\'s end does not remove it, and an offer reaches the latest', async t => {
  const h = new HeadLists()
  let failFirst!: (e: Error) => void
  const first = h.race('k', () => new Promise<Buffer>((_, reject) => { failFirst = reject }))
  const second = h.race('k', () => new Promise<Buffer>(() => {}))
  failFirst(new Error('timeout'))
  await t.rejects(first)
  await turn()
  t.ok(h.waiting('k'), 'the retry still waits')
  h.offer('k', list(4))
  t.same(await second, list(4))
})
