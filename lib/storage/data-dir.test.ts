import t from 'tap'
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureWritableDir, ensureWritableSubdirs } from './data-dir.js'

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

t.test('subdirs: a missing parent has none, files are passed over, every directory is probed', async t => {
  const base = t.testdir()
  await ensureWritableSubdirs(join(base, 'missing'), 'a test subdir')
  for (let i = 0; i < 40; i++) mkdirSync(join(base, `d${i}`))
  writeFileSync(join(base, 'file'), 'x')
  await ensureWritableSubdirs(base, 'a test subdir')
  // permission bits mean nothing to root: there the refusal is tested as nobody (test/regress/issue-14-16-writable-subdirs.test.ts)
  if (process.getuid?.() === 0) return
  chmodSync(join(base, 'd33'), 0o555)
  t.teardown(() => chmodSync(join(base, 'd33'), 0o755))
  await t.rejects(ensureWritableSubdirs(base, 'a test subdir'), { code: 'CDN_ERR_STORAGE', message: `a test subdir ${join(base, 'd33')} is not writable: EACCES (permission denied)` })
})
