import t from 'tap'
import { KeyRing, inCidr, signToken, signViewer, verifyToken, verifyViewer } from './tokens.js'

const ring = KeyRing.parse('k2:second-secret-0123456789,k1:first-secret-0123456789')
const now = 1_800_000_000

t.test('a token verifies for its title, client network and lifetime', async t => {
  const tok = signToken(ring, { cid: 'film', exp: now + 60, net: '192.0.2.0/24', vid: 'v1' })
  const c = verifyToken(ring, tok, { contentId: 'film', clientIp: '192.0.2.77', now })
  t.equal(c.vid, 'v1')
  t.equal(c.kid, 'k2', 'signed with the first (current) key')
  t.ok(verifyToken(ring, tok, { contentId: 'film', clientIp: '::ffff:192.0.2.1', now }), 'v4-mapped address')
})

t.test('each way a token can be wrong gets a 403 naming why', async t => {
  const tok = signToken(ring, { cid: 'film', exp: now + 60, net: '192.0.2.0/24' })
  const v = (token: string | undefined, over: Partial<{ contentId: string; clientIp: string; now: number }> = {}) =>
    () => verifyToken(ring, token, { contentId: 'film', clientIp: '192.0.2.5', now, ...over })
  t.throws(v(undefined), { statusCode: 403, message: /missing token/ })
  t.throws(v('garbage'), { message: /malformed/ })
  t.throws(v(tok, { now: now + 61 }), { message: /expired/ })
  t.throws(v(tok, { clientIp: '198.51.100.1' }), { message: /outside the token's network/ })
  t.throws(v(tok, { contentId: 'other' }), { message: /another title/ })
  // tamper with the payload: change the title, keep the signature
  const [payload, sig] = tok.split('.')
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString())
  const forged = Buffer.from(JSON.stringify({ ...claims, cid: 'other', exp: now + 1e6 })).toString('base64url') + '.' + sig
  t.throws(() => verifyToken(ring, forged, { contentId: 'other', clientIp: '192.0.2.5', now }), { message: /bad signature/ })
  const flipped = tok.slice(0, -2) + (tok.endsWith('A') ? 'B' : 'A') + tok.slice(-1)
  t.throws(v(flipped), { message: /bad signature|malformed/ })
})

t.test('key rotation: tokens under the old key keep working while it is in the ring', async t => {
  const old = new KeyRing([{ kid: 'k1', secret: 'first-secret-0123456789' }])
  const tok = signToken(old, { cid: 'film', exp: now + 60 })
  t.ok(verifyToken(ring, tok, { contentId: 'film', clientIp: '10.0.0.1', now }), 'accepted by a ring holding k2 and k1')
  const retired = new KeyRing([{ kid: 'k2', secret: 'second-secret-0123456789' }])
  t.throws(() => verifyToken(retired, tok, { contentId: 'film', clientIp: '10.0.0.1', now }), { message: /unknown key id "k1"/ })
  const wrongSecret = new KeyRing([{ kid: 'k1', secret: 'another-secret-0123456789' }])
  t.throws(() => verifyToken(wrongSecret, tok, { contentId: 'film', clientIp: '10.0.0.1', now }), { message: /bad signature/ })
})

t.test('a viewer credential proves a viewer id and nothing else', async t => {
  const cred = signViewer(ring, 'alice', now + 60)
  t.equal(verifyViewer(ring, cred, now), 'alice')
  t.throws(() => verifyViewer(ring, cred, now + 60), { statusCode: 403, message: /viewer credential expired/ })
  t.throws(() => verifyViewer(ring, undefined, now), { message: /missing viewer credential/ })
  t.throws(() => verifyViewer(ring, 'alice', now), { message: /bare viewer id is not accepted/ })
  t.throws(() => verifyViewer(ring, 'a.b.c', now), { message: /malformed viewer credential/ })
  // the old way, a bare id, and an id swapped into a signed credential
  const [payload, sig] = cred.split('.')
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString())
  const forged = Buffer.from(JSON.stringify({ ...claims, vid: 'bob' })).toString('base64url') + '.' + sig
  t.throws(() => verifyViewer(ring, forged, now), { message: /bad signature/ })
  t.throws(() => verifyViewer(new KeyRing([{ kid: 'k2', secret: 'another-secret-0123456789' }]), cred, now), { message: /bad signature/ })
  // neither kind of token stands in for the other, though both carry a viewer id
  const play = signToken(ring, { cid: 'film', exp: now + 60, vid: 'alice' })
  t.throws(() => verifyViewer(ring, play, now), { message: /not a viewer credential/ })
  t.throws(() => verifyToken(ring, cred, { contentId: 'film', clientIp: '10.0.0.1', now }), { message: /not a play token/ })
})

t.test('CIDR matching covers v4 and v6 and refuses nonsense', async t => {
  t.ok(inCidr('10.1.2.3', '10.0.0.0/8'))
  t.notOk(inCidr('11.1.2.3', '10.0.0.0/8'))
  t.ok(inCidr('2001:db8::1', '2001:db8::/32'))
  t.notOk(inCidr('2001:db9::1', '2001:db8::/32'))
  t.notOk(inCidr('10.1.2.3', '2001:db8::/32'))
  t.throws(() => inCidr('10.0.0.1', '10.0.0.0/33'))
  t.throws(() => inCidr('10.0.0.1', 'nonsense'))
  t.throws(() => KeyRing.parse('k1:short'), /too short/)
})

t.test('a request\'s token comes from ?token= or Authorization: Bearer', async t => {
  const { requestToken } = await import('./tokens.js')
  t.equal(requestToken('token=abc.def', undefined), 'abc.def')
  t.equal(requestToken('x=1&token=abc.def&y=2', undefined), 'abc.def')
  t.equal(requestToken('notoken=zzz', 'Bearer qq.rr'), 'qq.rr', 'a parameter that merely ends in token is not it')
  t.equal(requestToken('', undefined), undefined)
  t.equal(requestToken('token=a%2Eb', undefined), 'a.b')
})
