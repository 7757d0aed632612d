import t from 'tap'
import { fillGrantKey, grantFromHeader, signGrant, verifyGrant } from './fill-grant.js'

const key = fillGrantKey('shard-token-0123456789')
const now = 1_800_000_000
const claims = { sid: 'film.0123456789abcdef', index: 3, shard: 'shard-2', exp: now + 60, edge: 'edge-a' }
const want = { sid: claims.sid, index: 3, shard: 'shard-2', now }

t.test('a grant verifies for its chunk, its shard and its lifetime', async t => {
  const g = signGrant(key, claims)
  t.match(g, /^g1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
  t.same(verifyGrant(key, g, want), claims)
  t.notOk(g.includes('shard-token'), 'the grant carries nothing of the token')
  t.equal(grantFromHeader(`Grant ${g}`), g)
  t.equal(grantFromHeader(`Bearer ${g}`), undefined, 'a bearer is not a grant')
})

t.test('the key is derived from the shard token: another token, another key', async t => {
  t.notSame(fillGrantKey('other-token'), key)
  t.equal(fillGrantKey('shard-token-0123456789').length, 32)
})

t.test('each way a grant can be wrong is a 403 naming why', async t => {
  const g = signGrant(key, claims)
  const v = (grant: string, over: Partial<typeof want> = {}, k = key) => () => verifyGrant(k, grant, { ...want, ...over })
  t.throws(v('garbage'), { statusCode: 403, code: 'CDN_ERR_GRANT_INVALID', reason: 'malformed' })
  t.throws(v(g, {}, fillGrantKey('another cluster')), { code: 'CDN_ERR_GRANT_INVALID', reason: 'forged', message: /signature/ })
  // claims edited (a longer lifetime), the mac kept
  const [, , mac] = g.split('.')
  const edited = Buffer.from(JSON.stringify(['read', claims.sid, 3, 'shard-2', now + 86400, 'edge-a'])).toString('base64url')
  t.throws(v(`g1.${edited}.${mac}`), { code: 'CDN_ERR_GRANT_INVALID', reason: 'forged' })
  t.throws(v(g, { index: 4 }), { code: 'CDN_ERR_GRANT_INVALID', reason: 'wrong_chunk', message: /not film\.0123456789abcdef\/4/ })
  t.throws(v(g, { sid: 'other.0123456789abcdef' }), { code: 'CDN_ERR_GRANT_INVALID', reason: 'wrong_chunk' })
  t.throws(v(g, { shard: 'shard-1' }), { code: 'CDN_ERR_GRANT_INVALID', reason: 'wrong_shard', message: /for shard shard-2, not shard-1/ })
  t.throws(v(g, { shard: '' }), { reason: 'no_shard_id', message: /origin\.id/ })
  t.throws(v(g, { now: now + 60 }), { statusCode: 403, code: 'CDN_ERR_GRANT_EXPIRED', reason: 'expired' })
  t.ok(verifyGrant(key, g, { ...want, now: now + 59 }), 'good to the last second')
})
