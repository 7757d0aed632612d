import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkHugePages, thpMode } from './host.js'

t.test('huge pages: the kernel\'s THP mode read, and what doctor says of it', async t => {
  const dir = t.testdir()
  const file = join(dir, 'enabled')
  writeFileSync(file, 'always [madvise] never\n')
  t.equal(await thpMode(file), 'madvise')
  t.equal(await thpMode(join(dir, 'missing')), undefined)
  t.match(checkHugePages('never', {}), { check: 'huge-pages', status: 'warn', message: /off \(never\)/, fix: /madvise/ })
  t.match(checkHugePages('madvise', {}), { status: 'ok', message: /not set in this shell/ })
  t.match(checkHugePages('always', { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }), { status: 'ok', message: /asks malloc for them/ })
  t.match(checkHugePages('madvise', { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }), { status: 'ok', message: /not set in this shell/ }, 'an explicit 0 is not set')
  t.match(checkHugePages(undefined, {}), { status: 'skip' })
})
