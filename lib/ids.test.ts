import t from 'tap'
import { CONTENT_ID_MAX, isContentId, isShardKey, parseChunkIndex, parseContentId, parseShardKey } from './ids.js'

const BAD_ANYWHERE = ['', '.', '..', 'a..b', '-a', '_a', '.hidden', 'a/b', 'a\\b', '%2e%2e', 'a%2fb',
  'a\u0000b', 'a b', 'é', 'a'.repeat(129), '..%2f', 'a:b']

t.test('content ids follow the rule and nothing else: 1-111 characters, no trailing dot', async t => {
  t.equal(CONTENT_ID_MAX, 111)
  for (const ok of ['a', 'Movie_1.mp4', 'x-y.z', '9', 'a'.repeat(111)]) t.ok(isContentId(ok), ok)
  for (const bad of [...BAD_ANYWHERE, 'a'.repeat(112), 'a'.repeat(128), 'movie.'])
    t.notOk(isContentId(bad), JSON.stringify(bad))
  t.throws(() => parseContentId('..'), { code: 'CDN_ERR_INVALID_ID', statusCode: 400 })
  t.throws(() => parseContentId('movie.'), { message: /not ending in "\."/ })
})

t.test('shard keys take the storage id of the longest title, and nothing else', async t => {
  for (const ok of ['a', 'movie-1.0123456789abcdef', 'a'.repeat(128), 'movie.']) t.ok(isShardKey(ok), ok)
  for (const bad of BAD_ANYWHERE) t.notOk(isShardKey(bad), JSON.stringify(bad))
  t.throws(() => parseShardKey('a'.repeat(129)), { code: 'CDN_ERR_INVALID_ID', message: /shard key/ })
})

t.test('chunk indexes are canonical non-negative integers', async t => {
  t.equal(parseChunkIndex('0'), 0)
  t.equal(parseChunkIndex('4294967295'), 4294967295)
  for (const bad of ['', '-1', '01', '1.0', '1e3', '4294967296', '99999999999', ' 1', '0x1'])
    t.throws(() => parseChunkIndex(bad), { code: 'CDN_ERR_INVALID_ID' }, JSON.stringify(bad))
})
