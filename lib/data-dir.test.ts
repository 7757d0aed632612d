import t from 'tap'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureWritableDir } from './data-dir.js'

t.test('a missing dir is made, and the check leaves nothing behind', async t => {
  const dir = join(t.testdir(), 'a', 'b')
  await ensureWritableDir(dir, 'the test dir')
  t.ok(existsSync(dir))
  t.same(readdirSync(dir), [])
})

t.test('a dir that cannot be made or written is one StorageError naming it', async t => {
  const base = t.testdir()
  const file = join(base, 'not-a-dir')
  writeFileSync(file, 'x')
  await t.rejects(ensureWritableDir(join(file, 'sub'), 'the test dir'),
    { code: 'CDN_ERR_STORAGE', message: `cannot create the test dir ${join(file, 'sub')}: ENOTDIR (not a directory)` })
  await t.rejects(ensureWritableDir(file, 'the test dir'), { code: 'CDN_ERR_STORAGE', message: /^cannot create the test dir .*not-a-dir: EEXIST/ })
})
