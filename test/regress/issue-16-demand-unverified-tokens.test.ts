import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { get, startTestEdge, until } from '../helpers/edge.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'

/**
 * From a read-only audit (stop 41): an edge that does not require play
 * tokens (edge.requireToken off, the default) counted a play for every new
 * token string a request carried, unchecked. One client sending
 * `Authorization: Bearer junk-1`, `junk-2`, ... made up as many plays, which
 * feed the router's trending, steering's hot titles and every edge's
 * prefill; and each string, up to a header's size, was kept as a session key.
 * Now a token is a session only if it verifies against the token keys the
 * edge holds; any other request is its client address's session for the
 * title, as a request without a token was already.
 */
const CS = 1024 * 1024
const KEYS = 'k1:demand-unverified-tokens-test-key-0123456789'

for (const threads of [0, 1]) {
  t.test(`made-up tokens count one play, signed ones a play each${threads ? ' (a serve thread)' : ''}`, async t => {
    const up = await FakeUpstream.start()
    t.teardown(() => up.close())
    await up.addTitle('film', titleBytes(2 * CS, 'film'), { chunkSize: CS })
    const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.serveThreads': threads }, { REELCDN_TOKEN_KEYS: KEYS })
    const url = `${edge.url}/v1/content/film`
    // the chunk cached first, so a serve thread answers the reads after it
    t.equal((await get(url, { range: 'bytes=0-0' })).status, 206)
    for (let i = 0; i < 20; i++) t.equal((await get(url, { range: 'bytes=0-0', authorization: `Bearer junk-${i}` })).status, 206)
    for (let i = 0; i < 5; i++) t.equal((await get(`${url}?token=made-up-${i}`, { range: 'bytes=0-0' })).status, 206)
    t.equal((await get(`${edge.url}/v1/content/film/t/made-up-path-token/film`, { range: 'bytes=0-0' })).status < 500, true)
    const ring = KeyRing.parse(KEYS)
    for (const vid of ['ann', 'bob']) {
      const token = signToken(ring, { cid: 'film', exp: Math.floor(Date.now() / 1000) + 600, vid })
      t.equal((await get(url, { range: 'bytes=1-1', authorization: `Bearer ${token}` })).status, 206)
      t.equal((await get(url, { range: 'bytes=2-2', authorization: `Bearer ${token}` })).status, 206, 'the same session again')
    }
    // a serve thread posts what it counted every 10 ms
    await until(async () => (edge.demand.top(1)[0]?.plays ?? 0) >= 3, 'the plays counted')
    await sleep(100)
    t.same(edge.demand.top(1), [{ contentId: 'film', plays: 3 }], 'one play for the address, whatever it sent, and one per signed token')
  })
}
