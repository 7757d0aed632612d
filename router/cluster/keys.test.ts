import t from 'tap'
import { parseStorageId, parseTitleId, randomVersion, storageId, TITLE_ID_MAX, versionFromDigest } from './keys.js'

t.test('storage ids carry the version and split back at the last dot', async t => {
  const v = randomVersion()
  t.match(v, /^[0-9a-f]{16}$/)
  t.same(parseStorageId(storageId('a.b.c', v)), { contentId: 'a.b.c', version: v })
  t.equal(parseStorageId('no-version'), undefined)
  t.equal(parseStorageId('x.0123'), undefined, 'a short version is not ours')
  t.equal(parseStorageId('.0123456789abcdef'), undefined)
  const longest = 'x'.repeat(TITLE_ID_MAX)
  t.equal(storageId(longest, v).length, 128, 'the longest title fits the shard id rule')
})

t.test('the version follows the file digest and the chunk size', async t => {
  const d = 'b'.repeat(64)
  t.equal(versionFromDigest(d, 65536), versionFromDigest(d, 65536))
  t.not(versionFromDigest(d, 65536), versionFromDigest(d, 131072))
  t.not(versionFromDigest(d, 65536), versionFromDigest('c'.repeat(64), 65536))
})

t.test('title ids: the contentId rule, 111 characters, no trailing dot', async t => {
  t.equal(parseTitleId('movie-1.mp4'), 'movie-1.mp4')
  t.throws(() => parseTitleId('x'.repeat(TITLE_ID_MAX + 1)), { code: 'CDN_ERR_INVALID_ID' })
  t.throws(() => parseTitleId('movie.'), { code: 'CDN_ERR_INVALID_ID' })
  t.throws(() => parseTitleId('a..b'), { code: 'CDN_ERR_INVALID_ID' })
  t.throws(() => parseTitleId('%2e'), { code: 'CDN_ERR_INVALID_ID' })
})
