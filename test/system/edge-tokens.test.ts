import t from 'tap'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { TestCluster, TOKEN_KEYS } from './harness.js'
import { get, metric, settled, startTestEdge } from '../helpers/edge.js'
import { tamperedSignature } from '../helpers/tamper.js'

/**
 * An edge started with requireToken: the tokens /v1/play hands out open every
 * range of the session; each way a token can be wrong is a 403 naming why;
 * keys rotate with two in the ring.
 */
const OLD = TOKEN_KEYS // k1, what the test router signs with
const NEW = 'k2:test-token-key-two-9876543210'

t.test('a play token from the router serves every range of a session; bad ones get 403 with the reason', async t => {
  const c = await TestCluster.start(t)
  const body = randomBytes(65536 * 3 + 100)
  await c.ingest('film', body)
  await c.ingest('other', randomBytes(1000))
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.requireToken': true }, { REELCDN_TOKEN_KEYS: OLD })
  const play = await (await request(`${c.url}/v1/play/film`)).body.json() as { token: string }
  const tok = play.token
  const url = `${edge.url}/v1/content/film`
  for (const [s, e] of [[0, 99], [65530, 65545], [65536 * 3, 65536 * 3 + 99]] as const) {
    const r = await get(`${url}?token=${tok}`, { range: `bytes=${s}-${e}` })
    t.equal(r.status, 206)
    t.same(r.body, body.subarray(s, e + 1), `bytes ${s}-${e}`)
  }
  const bearer = await get(url, { range: 'bytes=0-9', authorization: `Bearer ${tok}` })
  t.equal(bearer.status, 206, 'or in Authorization: Bearer')

  const reason = async (u: string, headers: Record<string, string> = {}) => {
    const r = await get(u, { range: 'bytes=0-9', ...headers })
    t.equal(r.status, 403)
    t.equal(r.headers['access-control-allow-origin'], '*', 'a browser player can read the refusal')
    return (JSON.parse(r.body.toString()) as { error: { message: string } }).error.message
  }
  t.match(await reason(url), /missing token/)
  const [payload, sig] = tok.split('.')
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString())
  const forged = Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 86400 })).toString('base64url')
  t.match(await reason(`${url}?token=${forged}.${sig}`), /bad signature/, 'tampered payload')
  t.match(await reason(`${url}?token=${payload}.${tamperedSignature(sig!)}`), /bad signature/, 'tampered signature')
  t.match(await reason(`${edge.url}/v1/content/other?token=${tok}`), /another title/)
  const ring = KeyRing.parse(OLD)
  const expired = signToken(ring, { cid: 'film', exp: Math.floor(Date.now() / 1000) - 1 })
  t.match(await reason(`${url}?token=${expired}`), /expired/)
  const elsewhere = signToken(ring, { cid: 'film', exp: Math.floor(Date.now() / 1000) + 60, net: '10.0.0.0/8' })
  t.match(await reason(`${url}?token=${elsewhere}`), /outside the token's network 10\.0\.0\.0\/8/, 'wrong network')
  // the cached claims are checked as strictly as a first sight: the valid token, then the same token for another title
  t.match(await reason(`${edge.url}/v1/content/other`, { authorization: `Bearer ${tok}` }), /another title/)

  const pre = await request(url, { method: 'OPTIONS', headers: { origin: 'https://player.example', 'access-control-request-method': 'GET' } })
  await pre.body.dump()
  t.equal(pre.statusCode, 204, 'CORS preflight needs no token')
  await settled(edge)
  t.equal(await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'meta' }), 1, 'refused requests cost no upstream lookup')
})

t.test('key rotation: an edge with both keys accepts tokens of either; once the old key leaves, its tokens fail', async t => {
  const c = await TestCluster.start(t)
  await c.ingest('film', randomBytes(5000))
  const exp = Math.floor(Date.now() / 1000) + 600
  const oldTok = signToken(KeyRing.parse(OLD), { cid: 'film', exp })
  const newTok = signToken(KeyRing.parse(`${NEW},${OLD}`), { cid: 'film', exp })
  t.match(JSON.parse(Buffer.from(newTok.split('.')[0]!, 'base64url').toString()), { kid: 'k2' }, 'the first key signs')
  const both = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.requireToken': true }, { REELCDN_TOKEN_KEYS: `${NEW},${OLD}` })
  t.equal((await get(`${both.url}/v1/content/film?token=${oldTok}`, { range: 'bytes=0-9' })).status, 206)
  t.equal((await get(`${both.url}/v1/content/film?token=${newTok}`, { range: 'bytes=0-9' })).status, 206)
  const onlyNew = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.requireToken': true }, { REELCDN_TOKEN_KEYS: NEW })
  t.equal((await get(`${onlyNew.url}/v1/content/film?token=${newTok}`, { range: 'bytes=0-9' })).status, 206)
  const r = await get(`${onlyNew.url}/v1/content/film?token=${oldTok}`, { range: 'bytes=0-9' })
  t.equal(r.status, 403)
  t.match(r.body.toString(), /unknown key id \\"k1\\"/)
  await settled(both)
  await settled(onlyNew)
})

t.test('an edge that requires tokens refuses to start without keys', async t => {
  const c = await TestCluster.start(t)
  await t.rejects(startTestEdge(t, { url: c.url, token: undefined }, { 'edge.requireToken': true }, {}), /REELCDN_TOKEN_KEYS/)
})
