import t from 'tap'
import { CONTENT_ID_MAX, isShardKey } from '../../lib/ids.js'
import { parseStorageId, randomVersion, storageId, versionFromDigest } from './keys.js'

t.test('storage ids carry the version and split back at the last dot', async t => {
  const v = randomVersion()
  t.match(v, /^[0-9a-f]{16}$/)
  t.same(parseStorageId(storageId('a.b.c', v)), { contentId: 'a.b.c', version: v })
  t.equal(parseStorageId('no-version'), undefined)
  t.equal(parseStorageId('x.0123'), undefined, 'a short version is not ours')
  t.equal(parseStorageId('.0123456789abcdef'), undefined)
  const longest = 'x'.repeat(CONTENT_ID_MAX)
  t.equal(storageId(longest, v).length, 128)
  t.ok(isShardKey(storageId(longest, v)), 'the longest title\'s storage id is a shard key')
  t.equal(parseStorageId(storageId('x'.repeat(CONTENT_ID_MAX + 1), v.slice(1))), undefined)
})

t.test('the version follows the file digest and the chunk size', async t => {
  const d = 'b'.repeat(64)
  t.equal(versionFromDigest(d, 65536), versionFromDigest(d, 65536))
  t.not(versionFromDigest(d, 65536), versionFromDigest(d, 131072))
  t.not(versionFromDigest(d, 65536), versionFromDigest('c'.repeat(64), 65536))
})
