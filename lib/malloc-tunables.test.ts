import t from 'tap'
import { hasHugeMalloc, hugeMallocEnv } from './malloc-tunables.js'

t.test('huge pages for malloc are added to the environment, next to other tunables, never over a choice already made', async t => {
  t.equal(hugeMallocEnv({}).GLIBC_TUNABLES, 'glibc.malloc.hugetlb=1')
  t.equal(hugeMallocEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES, 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1')
  t.equal(hugeMallocEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }).GLIBC_TUNABLES, 'glibc.malloc.hugetlb=0', 'an explicit 0 (to measure without) is kept')
  const env = { PATH: '/bin', GLIBC_TUNABLES: 'x=1:glibc.malloc.hugetlb=2' }
  t.equal(hugeMallocEnv(env), env, 'unchanged when it names hugetlb already')
  t.equal(hugeMallocEnv({ PATH: '/bin' }).PATH, '/bin', 'the rest of the environment is kept')
  t.ok(hasHugeMalloc(hugeMallocEnv({})))
  t.notOk(hasHugeMalloc({}))
  t.notOk(hasHugeMalloc({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }))
  t.ok(hasHugeMalloc({ GLIBC_TUNABLES: 'a=1:glibc.malloc.hugetlb=2' }))
})
