import t from 'tap'
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readSecretFile, SecretFileModeError, writeSecretFile } from './secret-file.js'

t.test('a written secret file is 0600 whatever the file was and whatever the umask', async t => {
  const dir = t.testdir({ open: 'old\n' })
  const file = join(dir, 'open')
  chmodSync(file, 0o666)
  const umask = process.umask(0o277)
  try {
    await writeSecretFile(file, 'new\n')
    await writeSecretFile(join(dir, 'fresh'), 'x\n')
  } finally {
    process.umask(umask)
  }
  t.equal(readFileSync(file, 'utf8'), 'new\n')
  t.equal((statSync(file).mode & 0o777).toString(8), '600', 'an existing file open to all')
  t.equal((statSync(join(dir, 'fresh')).mode & 0o777).toString(8), '600', 'a new one, under a umask that would make it 0400')
  t.same(readdirSync(dir).sort(), ['fresh', 'open'], 'nothing left aside')
})

t.test('a stale file left aside by a crash is not written into', async t => {
  const dir = t.testdir()
  const file = join(dir, 'token')
  writeFileSync(`${file}.${process.pid}.tmp`, 'junk', { mode: 0o666 })
  await writeSecretFile(file, 's\n')
  t.equal((statSync(file).mode & 0o777).toString(8), '600')
  t.same(readdirSync(dir), ['token'])
})

t.test('reading refuses a file its group or others have any permission on', async t => {
  const dir = t.testdir({ token: 's\n' })
  const file = join(dir, 'token')
  for (const m of [0o600, 0o400, 0o700]) {
    chmodSync(file, m)
    t.equal(readSecretFile(file), 's\n', `0${m.toString(8)}`)
  }
  for (const m of [0o644, 0o660, 0o606, 0o610, 0o601]) {
    chmodSync(file, m)
    t.throws(() => readSecretFile(file), new SecretFileModeError(file, m), `0${m.toString(8)}`)
  }
  t.throws(() => readSecretFile(join(dir, 'none')), { code: 'ENOENT' })
})
