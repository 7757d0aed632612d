import t, { type Test } from 'tap'
import { open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChunkRow } from './chunk-index.js'
import { OpenFiles } from './open-files.js'

/** Open chunk files: shared, bounded, and never reused once forgotten. */
function setup(t: Test, max: number) {
  const dir = t.testdir({ a: 'a', b: 'b', c: 'c' })
  const opened: string[] = []
  const closed: string[] = []
  const files = new OpenFiles(async row => {
    opened.push(row.contentId)
    const fh = await open(join(dir, row.contentId), 'r')
    const close = fh.close.bind(fh)
    fh.close = async () => { closed.push(row.contentId); return close() }
    return fh
  }, row => row.contentId, max)
  t.teardown(() => files.closeAll())
  return { dir, files, opened, closed }
}
const row = (id: string) => ({ contentId: id, index: 0, sha256: id }) as ChunkRow
const settle = () => new Promise(r => setImmediate(r))

t.test('concurrent reads of one file share one open, and later reads reuse it', async t => {
  const { files, opened, closed } = setup(t, 8)
  const [x, y] = await Promise.all([files.acquire(row('a')), files.acquire(row('a'))])
  t.equal(x.fh, y.fh)
  x.release()
  y.release()
  const z = await files.acquire(row('a'))
  z.release()
  t.same(opened, ['a'])
  t.same(closed, [])
})

t.test('past the bound, the least recently used idle file is closed', async t => {
  const { files, opened, closed } = setup(t, 2)
  for (const id of ['a', 'b', 'c']) (await files.acquire(row(id))).release()
  await settle()
  t.same(closed, ['a'])
  t.equal(files.size, 2)
  ;(await files.acquire(row('a'))).release()
  t.same(opened, ['a', 'b', 'c', 'a'])
})

t.test('a forgotten file closes when its last read releases it, and is not handed out again', async t => {
  const { dir, files, opened, closed } = setup(t, 8)
  const inUse = await files.acquire(row('a'))
  files.forget(row('a'))
  await settle()
  t.same(closed, [], 'still open for the read in flight')
  await writeFile(join(dir, 'a'), 'A') // a repair replaces the file
  const next = await files.acquire(row('a'))
  t.not(next.fh, inUse.fh, 'a new read opens the file afresh')
  const buf = Buffer.alloc(1)
  await next.fh.read(buf, 0, 1, 0)
  t.equal(buf.toString(), 'A')
  inUse.release()
  await settle()
  t.same(closed, ['a'])
  next.release()
  t.same(opened, ['a', 'a'])
})

t.test('a failed open is not remembered', async t => {
  const { dir, files, opened } = setup(t, 8)
  await t.rejects(files.acquire(row('missing')), { code: 'ENOENT' })
  await writeFile(join(dir, 'missing'), 'now here')
  const f = await files.acquire(row('missing'))
  f.release()
  t.same(opened, ['missing', 'missing'])
})
