import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { TestCluster, TOKEN, TOKEN_KEYS } from './harness.js'
import { get, startTestEdge } from '../helpers/edge.js'
import { tamperedSignature } from '../helpers/tamper.js'

/**
 * router.requireToken: the origin URL /v1/play hands out (the router itself,
 * last in the list) is verified like an edge's; edges keep filling with their
 * own credential (the read token, or the admin token), which no play token is.
 */
const READ = 'test-read-token-for-edges'

async function reason(t: Test, url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const r = await get(url, { range: 'bytes=0-9', ...headers }, method)
  t.equal(r.status, 403, `403 for ${url.replace(/token=[^&]*/, 'token=…')}`)
  return method === 'HEAD' ? '' : (JSON.parse(r.body.toString()) as { error: { message: string } }).error.message
}

t.test('a router requiring tokens serves its own play URL, refuses bad tokens with the reason, and still feeds edges', async t => {
  const c = await TestCluster.start(t, { overrides: { 'router.requireToken': true }, env: { REELCDN_ROUTER_READ_TOKEN: READ } })
  const body = randomBytes(65536 * 2 + 500)
  await c.ingest('film', body)
  await c.ingest('other', randomBytes(1000))
  const play = await (await request(`${c.url}/v1/play/film`)).body.json() as { token: string; urls: { url: string; kind: string }[] }
  const origin = play.urls.find(u => u.kind === 'origin')!.url
  const ok = await get(origin, { range: 'bytes=65530-65549' })
  t.equal(ok.status, 206, 'the origin URL of /v1/play plays')
  t.same(ok.body, body.subarray(65530, 65550))
  t.equal((await get(`${c.url}/v1/content/film`, { range: 'bytes=0-9', authorization: `Bearer ${play.token}` })).status, 206, 'or with the token as Bearer')
  t.equal((await get(origin, {}, 'HEAD')).status, 200, 'HEAD too')

  const url = `${c.url}/v1/content/film`
  t.match(await reason(t, url), /missing token/)
  t.match(await reason(t, url, {}, 'HEAD'), '', 'HEAD without a token')
  t.match(await reason(t, `${c.url}/v1/content/film/chunks/0`), /missing token/, 'a chunk without a token')
  t.match(await reason(t, `${c.url}/v1/content/film/meta`), /missing token/, 'the manifest without a token')
  const [payload, sig] = play.token.split('.')
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString())
  const forged = Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 86400 })).toString('base64url')
  t.match(await reason(t, `${url}?token=${forged}.${sig}`), /bad signature/, 'tampered payload')
  t.match(await reason(t, `${url}?token=${payload}.${tamperedSignature(sig!)}`), /bad signature/, 'tampered signature')
  t.match(await reason(t, `${c.url}/v1/content/other?token=${play.token}`), /another title/)
  const ring = KeyRing.parse(TOKEN_KEYS)
  const now = Math.floor(Date.now() / 1000)
  t.match(await reason(t, `${url}?token=${signToken(ring, { cid: 'film', exp: now - 1 })}`), /expired/)
  t.match(await reason(t, `${url}?token=${signToken(ring, { cid: 'film', exp: now + 60, net: '10.0.0.0/8' })}`),
    /outside the token's network 10\.0\.0\.0\/8/, 'wrong network')
  t.match(await reason(t, `${url}?token=${signToken(KeyRing.parse('k9:another-key-entirely-0123'), { cid: 'film', exp: now + 60 })}`),
    /unknown key id "k9"/, 'a key this router does not hold')
  t.match(await reason(t, url, { authorization: 'Bearer not-the-read-token' }), /malformed token/, 'a wrong credential is no play token either')
  const chunkWithToken = await get(`${c.url}/v1/content/film/chunks/1?token=${play.token}`)
  t.equal(chunkWithToken.status, 200, 'a play token for the title also opens its chunks')

  // edges: their upstream credential is the read token (or the admin token), with no play token at all
  t.equal((await get(url, { range: 'bytes=0-9', authorization: `Bearer ${READ}` })).status, 206, 'the read token reads')
  t.equal((await get(url, { range: 'bytes=0-9', authorization: `Bearer ${TOKEN}` })).status, 206, 'the admin token reads')
  const edge = await startTestEdge(t, { url: c.url, token: READ })
  const viaEdge = await get(`${edge.url}/v1/content/film`, { range: 'bytes=65000-66999' })
  t.equal(viaEdge.status, 206, 'an edge fills from the router with its credential')
  t.same(viaEdge.body, body.subarray(65000, 67000))
  t.equal((await get(`${c.url}/v1/content?limit=5`, { authorization: `Bearer ${READ}` })).status, 200, 'the catalog keeps the read token rule')
})

t.test('behind a read token without requireToken, the origin URL of /v1/play still plays: its token is verified', async t => {
  const c = await TestCluster.start(t, { env: { REELCDN_ROUTER_READ_TOKEN: READ } })
  const body = randomBytes(5000)
  await c.ingest('film', body)
  const play = await (await request(`${c.url}/v1/play/film`)).body.json() as { token: string; urls: { url: string; kind: string }[] }
  const r = await get(play.urls.find(u => u.kind === 'origin')!.url, { range: 'bytes=0-99' })
  t.equal(r.status, 206)
  t.same(r.body, body.subarray(0, 100))
  t.equal((await get(`${c.url}/v1/content/film`)).status, 401, 'no credential at all: 401 as before')
  t.equal((await get(`${c.url}/v1/content/film`, { authorization: 'Bearer wrong' })).status, 401, 'a wrong Bearer: 401 as before')
  t.match(await reason(t, `${c.url}/v1/content/film?token=${play.token.slice(0, -3)}AAA`), /bad signature/, 'a bad ?token=: 403 with the reason')
})

t.test('requireToken without token keys, or with no credential for edges, fails at start by name', async t => {
  await t.rejects(TestCluster.start(t, { overrides: { 'router.requireToken': true }, env: { REELCDN_TOKEN_KEYS: '' } }),
    { code: 'CDN_ERR_CONFIG', message: /router\.requireToken needs the token keys/ })
  await t.rejects(TestCluster.start(t, { overrides: { 'router.requireToken': true }, env: { REELCDN_ROUTER_TOKEN: '' } }),
    { code: 'CDN_ERR_CONFIG', message: /router\.requireToken needs a credential for the edges/ })
})
