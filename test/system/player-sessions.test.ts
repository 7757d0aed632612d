import t from 'tap'
import { request } from 'undici'
import { PlayerClient, type PlayResponse } from '../../client/player.js'
import { SequentialReader } from '../../client/sequential-reader.js'
import { playersMode, type Scenario } from '../../tools/loadtest/players-mode.js'
import { sliceOf } from '../../router/playback/trending.js'
import { EDGE_TOKEN, TestCluster, randomBody, until, viewerCredential } from './harness.js'
import { startTestEdge } from '../helpers/edge.js'

/**
 * The player client reports its play position to a real router while it
 * plays (PUT /v1/sessions/{id} with its play token) and stops at close; the
 * load tester's players, which use the client, feed the router's per-position
 * demand that edges' prefill asks for (/v1/trending?positions=1).
 */
const CS = 64 * 1024

/** The reader returns what is buffered, up to n: take exactly n, as a player consuming n bytes of media does. */
async function take(r: SequentialReader, n: number): Promise<Buffer> {
  const parts: Buffer[] = []
  for (let got = 0; got < n;) {
    const b = await r.read(n - got)
    if (b.length === 0) break
    parts.push(b)
    got += b.length
  }
  return Buffer.concat(parts)
}

async function play(url: string, id: string, viewer: string): Promise<PlayResponse & { viewerId: string; token: string }> {
  const res = await request(`${url}/v1/play/${id}?viewer=${viewerCredential(viewer)}`)
  t.equal(res.statusCode, 200)
  return await res.body.json() as PlayResponse & { viewerId: string; token: string }
}

t.test('the client reports its play position every interval while playing, and stops at close', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(CS * 8)
  await c.ingest('film', body)
  const p = await play(c.url, 'film', 'carol')
  t.equal(p.sessionUrl, `${c.url}/v1/sessions/film`, 'the play answer says where to report')
  const client = await PlayerClient.open(p, { reportIntervalMs: 20 })
  t.ok(client.reporter, 'a play answer with a session URL and a token turns reports on')
  await client.reporter!.report()
  t.equal(client.reporter!.sent + client.reporter!.failed, 0, 'a player that has not moved since open sends nothing')
  const reader = new SequentialReader(client, { bufferBytes: 4 * CS, fetchBytes: CS })
  t.teardown(() => reader.close())
  const got = await take(reader, 3 * CS + 17)
  t.same(got, body.subarray(0, 3 * CS + 17))
  t.equal(client.position, 3 * CS + 17, 'the play position is what the consumer took, not what is buffered')
  await until(() => c.router.sessions.get('carol', 'film')?.position === 3 * CS + 17, 'the router to hold the play position')
  reader.seek(6 * CS)
  await take(reader, 100)
  await until(() => c.router.sessions.get('carol', 'film')?.position === 6 * CS + 100, 'the position after a seek')
  const sent = client.reporter!.sent
  t.ok(sent >= 2 && client.reporter!.failed === 0, `${sent} reports accepted, none failed`)
  await take(reader, 50)
  await reader.close()
  await client.close()
  t.equal(c.router.sessions.get('carol', 'film')!.position, 6 * CS + 150, 'close sends the last position')
  t.equal(client.reporter!.active, false, 'the timer is stopped')
  // resume: the next play of the title offers the position
  const again = await (await request(`${c.url}/v1/play/film?viewer=${viewerCredential('carol')}`)).body.json() as { resume: { position: number } }
  t.equal(again.resume.position, 6 * CS + 150)
  // a play answer without a session URL (a bare URL list) sends nothing
  const bare = await PlayerClient.open({ contentId: 'film', urls: p.urls })
  t.equal(bare.reporter, undefined)
  await bare.close()
})

t.test('a failing report never disturbs playback: it is counted and retried', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(CS * 2)
  await c.ingest('film', body)
  const p = await play(c.url, 'film', 'dave')
  const client = await PlayerClient.open({ ...p, token: `${p.token.slice(0, -3)}AAA` }, { reportIntervalMs: 10 })
  const reader = new SequentialReader(client, { bufferBytes: CS, fetchBytes: CS / 2 })
  t.same(await take(reader, 1000), body.subarray(0, 1000))
  await until(() => client.reporter!.failed >= 2, 'two refused reports')
  t.match(client.reporter!.lastError, /^403 .*bad signature/)
  t.same(await take(reader, 1000), body.subarray(1000, 2000), 'playback goes on')
  await reader.close()
  await client.close()
  t.equal(c.router.sessions.get('dave', 'film'), undefined)
})

t.test('the load tester\'s players report positions, which reach the per-position demand prefill asks for', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  await c.ingest('alpha', randomBody(CS * 20))
  const scenario: Scenario = { name: 'test', players: 3, arrivalS: 0, zipf: 1, bitrates: [{ bps: 8_000_000, weight: 1 }],
    startupS: 0.2, bufferS: 1, sessionS: 4, completeShare: 1, meanWatchedShare: 1, seekChance: 0, premiereShare: 1 }
  const viewers: string[] = []
  const r = await playersMode({ scenario, titles: [{ contentId: 'alpha', size: CS * 20 }], durationS: 20, speed: 8, seed: 1,
    play: async id => {
      const p = await play(c.url, id, `lt-${viewers.length}`)
      viewers.push(p.viewerId)
      return p
    } })
  t.equal(r.players!.failed, 0)
  t.equal(viewers.length, 3)
  for (const v of viewers) {
    const pos = c.router.sessions.get(v, 'alpha')
    t.ok(pos && pos.position > 0, `viewer ${v} reported ${pos?.position}`)
  }
  // a play counted by an edge puts the title in trending; its position shares come from the players' reports
  t.equal((await request(`${c.url}/v1/demand`, { method: 'POST', headers: { authorization: `Bearer ${EDGE_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ edgeId: 'e1', titles: [{ contentId: 'alpha', plays: 3 }] }) })).statusCode, 200)
  const top = await (await request(`${c.url}/v1/trending?window=24h&positions=1`)).body.json() as { titles: { contentId: string; positions: number[] | null }[] }
  const shares = top.titles.find(x => x.contentId === 'alpha')!.positions
  t.ok(shares, 'the title has position shares')
  const last = c.router.sessions.get(viewers[0]!, 'alpha')!.position
  t.ok(shares![sliceOf(Math.floor(last / CS), 20)]! > 0, 'the slice of a reported position has a share')
  t.equal(shares!.reduce((a, b) => a + b, 0).toFixed(6), '1.000000')
  // and an edge's prefill plan follows them: the players watched to the end, so the ending goes first, not the opening
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.prefill.budgetBytes': CS }, { REELCDN_EDGE_ADMIN_TOKEN: 'edge-admin-token' })
  const plan = await (await request(`${edge.url}/v1/prefill`, { headers: { authorization: 'Bearer edge-admin-token' } })).body.json() as
    { plan: { chunks: { contentId: string; index: number }[] } }
  // 20 chunks, 20 slices: chunk i is slice i
  const most = shares!.indexOf(Math.max(...shares!))
  t.same(plan.plan.chunks.map(x => `${x.contentId}/${x.index}`), [`alpha/${most}`], 'the one chunk the budget allows is where the players reported most')
  t.not(most, 0, 'which is not the opening the prior would choose')
})
