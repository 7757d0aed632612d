import t from 'tap'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, settled, startTestEdge, until, type TestContext } from '../helpers/edge.js'

/**
 * A player that leaves before its miss's first byte (ffmpeg aborts on every
 * seek; a player seeks on) leaves no work behind that only it wanted:
 *   - a fill of its chunk still queued for a slot (edge.maxFills), with no
 *     other reader, is withdrawn: it never takes a slot nor asks upstream,
 *     and the players behind it are not made to wait for it;
 *   - its readahead (edge.readaheadChunks) is not started.
 * A fill that has started is shared by whoever reads the chunk and goes on.
 * Found by a read-only audit (issue 16 stop 40): the miss path never looked
 * at its client while it waited.
 */
const CS = 1024 * 1024

async function setup(t: TestContext, overrides: Record<string, number>) {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(4 * CS, 'left')
  await up.addTitle('left', bytes, { chunkSize: CS, blocks: true })
  const edge = await startTestEdge(t, up, { 'edge.fillTimeoutMs': 20_000, ...overrides })
  return { up, bytes, edge }
}

/** A range request that the test can abandon: the client closes its connection. */
function player(url: string, start: number, end: number): { done: Promise<number>; leave(): void } {
  const req = http.request(url, { headers: { range: `bytes=${start}-${end}` }, agent: false })
  const done = new Promise<number>((resolve, reject) => {
    req.once('response', res => { res.resume(); res.once('end', () => resolve(res.statusCode ?? 0)) })
    req.once('error', reject)
  })
  done.catch(() => {})
  req.end()
  return { done, leave: () => req.destroy() }
}

/** One fill slot: chunk 0's fill takes it and waits upstream (player `a`); chunk 1's fill queues behind it (player `b`). */
async function chunk1Queued(t: TestContext) {
  const { up, bytes, edge } = await setup(t, { 'edge.maxFills': 1, 'edge.readaheadChunks': 0 })
  const url = `${edge.url}/v1/content/left`
  up.hold('left', 0, 0)
  const a = player(url, 0, 1000)
  await up.held('left', 0)
  const b = player(url, CS, CS + 1000)
  await until(() => edge.fills.size === 2, 'chunk 1\'s fill queued')
  return { up, bytes, edge, url, a, b }
}

t.test('a queued fill whose only player left is withdrawn: never sent upstream, and the player behind it goes first', async t => {
  const { up, bytes, edge, url, a, b } = await chunk1Queued(t)
  b.leave()
  await until(() => edge.fills.size === 1, 'chunk 1\'s fill withdrawn once its player left')
  // chunk 2's player queues, and goes as soon as the slot frees
  const c = get(`${url}`, { range: `bytes=${2 * CS}-${2 * CS + 999}` })
  await until(() => edge.fills.size === 2, 'chunk 2\'s fill queued')
  up.release('left', 0)
  t.equal(await a.done, 206)
  const got = await c
  t.equal(got.status, 206)
  t.ok(got.body.equals(bytes.subarray(2 * CS, 2 * CS + 1000)), 'chunk 2\'s player, byte-exact')
  await settled(edge)
  t.same(up.log.map(r => r.index), [0, 2], 'chunk 1 was never asked for')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failures_total', { reason: 'withdrawn' }), 1, 'counted as withdrawn')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failures_total', { reason: 'upstream' }), 0, 'not as an upstream failure')
  // the chunk is asked for normally by the next player who wants it
  const again = await get(url, { range: `bytes=${CS}-${CS + 999}` })
  t.equal(again.status, 206)
  t.ok(again.body.equals(bytes.subarray(CS, CS + 1000)))
})

t.test('a queued fill another player still waits for is not withdrawn when one of its players leaves', async t => {
  const { up, bytes, edge, url, a, b } = await chunk1Queued(t)
  const stays = get(url, { range: `bytes=${CS + 5000}-${CS + 5999}` })
  await until(async () => (await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'coalesced' })) === 1, 'the second player to join chunk 1\'s fill')
  b.leave()
  await until(async () => (await metric(edge.url, 'reelcdn_http_responses_aborted_total')) === 1, 'the edge to see its player leave')
  t.equal(edge.fills.size, 2, 'still queued: another player waits for it')
  up.release('left', 0)
  t.equal(await a.done, 206)
  const got = await stays
  t.equal(got.status, 206)
  t.ok(got.body.equals(bytes.subarray(CS + 5000, CS + 6000)), 'byte-exact')
  await settled(edge)
})

t.test('a player that leaves before its miss\'s first byte starts no readahead', async t => {
  const { up, edge } = await setup(t, { 'edge.readaheadChunks': 1 })
  up.hold('left', 0, 0)
  const a = player(`${edge.url}/v1/content/left`, 0, 1000)
  await up.held('left', 0)
  a.leave()
  await until(async () => (await metric(edge.url, 'reelcdn_http_responses_aborted_total')) === 1, 'the edge to see its player leave')
  // the fill it started is under way: it goes on (shared by whoever reads chunk 0 next)
  up.release('left', 0)
  await settled(edge)
  await sleep(50)
  await settled(edge)
  t.same(up.log.map(r => r.index), [0], 'chunk 0 filled, chunk 1 not read ahead')
  t.equal(await metric(edge.url, 'reelcdn_edge_tier_chunks', { tier: 'ram' }), 1, 'chunk 0 cached')
})

t.test('a player that leaves while its title\'s manifest is on its way starts no fill', async t => {
  const { up, edge } = await setup(t, { 'edge.readaheadChunks': 0 })
  const release = up.holdMeta()
  const a = player(`${edge.url}/v1/content/left`, 0, 1000)
  await until(() => up.metaLog.length === 1, 'the manifest asked for')
  a.leave()
  await until(async () => (await metric(edge.url, 'reelcdn_http_responses_aborted_total')) === 1, 'the edge to see its player leave')
  release()
  await sleep(100)
  await settled(edge)
  t.same(up.log, [], 'no chunk was asked for')
  t.equal(edge.fills.size, 0)
})
