import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { HandleCache } from './disk-handles.js'

/** FileHandle.fd is -1 once closed. */
const isOpen = (h: { fh: { fd: number } }) => h.fh.fd >= 0
const settle = () => new Promise(r => setImmediate(r))

t.test('open files are shared, kept while idle up to max, and closed when their chunk is dropped', async t => {
  const dir = t.testdir()
  const paths = ['a', 'b', 'c'].map(n => { const p = join(dir, n); writeFileSync(p, n); return p })
  const crcs = () => Buffer.alloc(4)
  const cache = new HandleCache(1)
  const [a1, a2] = await Promise.all([cache.acquire('a', paths[0]!, crcs), cache.acquire('a', paths[0]!, crcs)])
  t.equal(a1, a2, 'concurrent readers of one chunk share one open file')
  t.equal(a1!.refs, 2)
  cache.release(a1!)
  cache.release(a2!)
  await settle()
  t.ok(isOpen(a1!), 'idle and within max: kept open')
  const b = (await cache.acquire('b', paths[1]!, crcs))!
  cache.release(b)
  await settle()
  t.notOk(isOpen(a1!), 'over max: the least recently used idle file is closed')
  t.ok(isOpen(b))

  const c = (await cache.acquire('c', paths[2]!, crcs))!
  cache.drop('c')
  t.ok(isOpen(c), 'dropped while a reader holds it: still open')
  cache.release(c)
  await settle()
  t.notOk(isOpen(c), 'closed when the last reader lets go')
  t.equal(await cache.acquire('x', join(dir, 'missing'), crcs), undefined, 'a missing file is undefined, not an error')
  t.equal(await cache.acquire('a', paths[0]!, () => undefined), undefined, 'so is a chunk without CRCs')
  await cache.closeAll()
  t.notOk(isOpen(b))
})

t.test('a chunk dropped while its file is being opened: the handle closes at its release, not 256 opens later', async t => {
  const dir = t.testdir({ f: 'bytes' })
  const hc = new HandleCache(4)
  const p = hc.acquire('k', join(dir, 'f'), () => Buffer.alloc(4))
  hc.drop('k') // a purge or eviction while the open is on its way
  const h = await p
  t.ok(h, 'the read that asked still gets its handle')
  hc.release(h!)
  t.equal(hc.size, 0, 'closed at its release: nothing left open')
})
