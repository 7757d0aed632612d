import t from 'tap'
import { isContentId, parseChunkIndex, parseContentId } from './ids.js'

t.test('content ids follow the rule and nothing else', async t => {
  for (const ok of ['a', 'Movie_1.mp4', 'x-y.z', '9', 'a'.repeat(128)]) t.ok(isContentId(ok), ok)
  for (const bad of ['', '.', '..', 'a..b', '-a', '_a', '.hidden', 'a/b', 'a\\b', '%2e%2e', 'a%2fb',
    'a\u0000b', 'a b', 'é', 'a'.repeat(129), '..%2f', 'a:b'])
    t.notOk(isContentId(bad), JSON.stringify(bad))
  t.throws(() => parseContentId('..'), { code: 'CDN_ERR_INVALID_ID', statusCode: 400 })
})

t.test('chunk indexes are canonical non-negative integers', async t => {
  t.equal(parseChunkIndex('0'), 0)
  t.equal(parseChunkIndex('4294967295'), 4294967295)
  for (const bad of ['', '-1', '01', '1.0', '1e3', '4294967296', '99999999999', ' 1', '0x1'])
    t.throws(() => parseChunkIndex(bad), { code: 'CDN_ERR_INVALID_ID' }, JSON.stringify(bad))
})
