import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, startTestEdge, until } from '../helpers/edge.js'
import { fresh, untilThreadsServe } from '../helpers/fresh.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { createLogger } from '../../lib/logger.js'
import { logSink } from '../helpers/origin.js'

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
  t.test(`made-up tokens count one play, signed ones a play each${threads ? ' (a serve thread answering some)' : ''}`, async t => {
    const up = await FakeUpstream.start()
    t.teardown(() => up.close())
    await up.addTitle('film', titleBytes(2 * CS, 'film'), { chunkSize: CS })
    const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.serveThreads': threads }, { REELCDN_TOKEN_KEYS: KEYS })
    const url = `${edge.url}/v1/content/film`
    // reads of chunk 0 answered with its byte: each counts one read in the title's opening slice
    let reads = 0
    const read = async (u: string, headers: Record<string, string>) => {
      const r = await get(u, { range: 'bytes=0-0', ...headers })
      t.equal(r.status, 206)
      reads++
    }
    // the chunk cached first, so a serve thread can answer the reads after it
    await read(url, {})
    let junk = 0
    const made = () => Promise.all([read(url, { authorization: `Bearer junk-${junk++}` }), read(`${url}?token=made-up-${junk++}`, {})])
    for (let i = 0; i < 10; i++) await made()
    // on a new connection each, until a serve thread has answered some of them (the kernel picks the acceptor)
    if (threads) await untilThreadsServe(edge.url, () => Promise.all(Array.from({ length: 4 }, () =>
      fresh(url, { range: 'bytes=0-0', authorization: `Bearer junk-${junk++}` }).then(r => { t.equal(r.status, 206); reads++ }))))
    const ring = KeyRing.parse(KEYS)
    for (const vid of ['ann', 'bob']) {
      const token = signToken(ring, { cid: 'film', exp: Math.floor(Date.now() / 1000) + 600, vid })
      await read(url, { authorization: `Bearer ${token}` })
      await read(url, { authorization: `Bearer ${token}` })
    }
    // a serve thread posts what it counted every 10 ms: wait until every read is in, then look at the plays
    const counted = () => {
      const c = edge.demand.take()
      edge.demand.restore(c)
      return c.find(x => x.contentId === 'film')
    }
    await until(async () => (counted()?.slices[0] ?? 0) === reads, `the ${reads} reads counted`)
    t.equal(counted()!.plays, 3, 'one play for the address, whatever it sent, and one per signed token')
  })
}

t.test('an edge that reports demand without the token keys says once that it counts plays per client address', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const sink = logSink()
  // test edges report nothing unless asked: this one reports demand (a report a minute)
  const reporting = { 'edge.demandReportMs': 60_000 }
  await startTestEdge(t, up, reporting, { REELCDN_EDGE_TOKEN: 'edge-credential' }, createLogger('edge', 'info', sink))
  t.equal(sink.lines.filter(l => l.level === 40 && /REELCDN_TOKEN_KEYS/.test(l.msg) && /per client address/.test(l.msg)).length, 1)
  const keyed = logSink()
  await startTestEdge(t, up, reporting, { REELCDN_EDGE_TOKEN: 'edge-credential', REELCDN_TOKEN_KEYS: KEYS }, createLogger('edge', 'info', keyed))
  t.same(keyed.lines.filter(l => /REELCDN_TOKEN_KEYS/.test(l.msg)), [], 'not with them')
})
