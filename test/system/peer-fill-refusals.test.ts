import t from 'tap'
import { createHash } from 'node:crypto'
import { createLogger } from '../../lib/logger.js'
import http from 'node:http'
import { get, metric, settled, startTestEdge, until } from '../helpers/edge.js'
import { logSink } from '../helpers/origin.js'
import { EDGE_CREDENTIAL, startSite, titleOwnedBy } from '../helpers/site.js'
import { titleBytes } from '../helpers/titles.js'

/**
 * What an owner edge refuses (docs/peer-fill.md, "Refusals"), each with its
 * status and code, counted by reason, logged at info without a stack; and
 * the one-hop rule: a peer request is answered by the owner, never forwarded.
 */
const CHUNK = 128 * 1024

const ok = { authorization: `Bearer ${EDGE_CREDENTIAL}`, 'x-reelcdn-edge-id': 'edge-b', 'x-reelcdn-peer-hop': '1' }

t.test('refusals: credential, hop marker, membership, ownership, bad requests; each counted and logged quietly', async t => {
  const sink = logSink()
  const s = await startSite(t, ['edge-a', 'edge-b'], {}, { logger: id => createLogger(id, 'info', sink) })
  const a = s.edges[0]!
  const id = titleOwnedBy(s.members(), 'edge-a')
  const other = titleOwnedBy(s.members(), 'edge-b', 'other')
  const body = titleBytes(2 * CHUNK, id)
  await s.up.addTitle(id, body, { chunkSize: CHUNK, blocks: true })
  await s.up.addTitle(other, body, { chunkSize: CHUNK, blocks: true })
  const url = `${a.url}/v1/peer/${id}/chunk/1`

  const good = await get(url, ok)
  t.equal(good.status, 200, 'a sibling\'s request is answered')
  t.ok(good.body.equals(body.subarray(CHUNK)), 'with the chunk')
  t.equal(good.headers.etag, `"${createHash('sha256').update(body.subarray(CHUNK)).digest('hex')}"`, 'the chunk\'s digest as its ETag')
  const ranged = await get(url, { ...ok, range: 'bytes=10-19' })
  t.equal(ranged.status, 206)
  t.ok(ranged.body.equals(body.subarray(CHUNK + 10, CHUNK + 20)))
  t.equal(ranged.headers['content-range'], `bytes 10-19/${CHUNK}`)

  const cases: [string, Record<string, string>, string, number, string, string][] = [
    ['no credential', { ...ok, authorization: '' }, url, 401, 'CDN_ERR_UNAUTHORIZED', 'credential'],
    ['a wrong credential', { ...ok, authorization: 'Bearer not-the-credential' }, url, 403, 'CDN_ERR_PEER_CREDENTIAL', 'forbidden'],
    ['no hop marker', { ...ok, 'x-reelcdn-peer-hop': '' }, url, 400, 'CDN_ERR_PEER_HOP', 'hop'],
    ['a hop marker of 0', { ...ok, 'x-reelcdn-peer-hop': '0' }, url, 400, 'CDN_ERR_PEER_HOP', 'hop'],
    ['a hop marker of 2: a forwarded request (a loop attempt)', { ...ok, 'x-reelcdn-peer-hop': '2' }, url, 508, 'CDN_ERR_PEER_LOOP', 'loop'],
    ['an edge that is not a member', { ...ok, 'x-reelcdn-edge-id': 'edge-z' }, url, 403, 'CDN_ERR_PEER_NOT_MEMBER', 'not_member'],
    ['the owner itself', { ...ok, 'x-reelcdn-edge-id': 'edge-a' }, url, 403, 'CDN_ERR_PEER_NOT_MEMBER', 'not_member'],
    ['a title this edge does not own here', ok, `${a.url}/v1/peer/${other}/chunk/0`, 421, 'CDN_ERR_PEER_NOT_OWNER', 'not_owner'],
    ['a chunk past the title\'s end', ok, `${a.url}/v1/peer/${id}/chunk/9`, 404, 'CDN_ERR_NOT_FOUND', 'bad_request'],
    ['a range outside the chunk', { ...ok, range: `bytes=0-${CHUNK}` }, url, 416, 'CDN_ERR_RANGE', 'bad_request'],
    ['a bad index', ok, `${a.url}/v1/peer/${id}/chunk/01`, 400, 'CDN_ERR_INVALID_ID', 'bad_request'],
  ]
  for (const [what, headers, u, status, code, reason] of cases) {
    const h = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== ''))
    const before = await metric(a.url, 'reelcdn_edge_peer_refused_total', { reason })
    const r = await get(u, h)
    t.equal(r.status, status, `${what}: ${status}`)
    const err = JSON.parse(r.body.toString()).error
    t.equal(err.code, code, `${what}: ${code}`)
    t.ok(err.message.length > 10, `${what}: says why (${err.message})`)
    t.equal(await metric(a.url, 'reelcdn_edge_peer_refused_total', { reason }), before + 1, `${what}: counted as ${reason}`)
  }
  const refusals = sink.lines.filter(l => /^peer request refused/.test(l.msg))
  t.same(new Set(refusals.map(l => l.reason)), new Set(cases.map(c => c[5])), 'each kind of refusal logged')
  t.ok(refusals.every(l => (l.level === 30 || l.level === 40) && JSON.stringify(l).includes('stack') === false), 'at info/warn, without a stack')
  t.ok(refusals.some(l => l.reason === 'forbidden' && l.level === 40), 'a wrong credential is a warning')
  t.equal(await metric(a.url, 'reelcdn_edge_peer_fills_total'), 0, 'the owner asked no peer meanwhile')
})

t.test('an edge in no site, or without the edge credential, refuses every peer request', async t => {
  const s = await startSite(t, ['edge-a', 'edge-b'])
  const id = titleOwnedBy(s.members(), 'edge-a')
  await s.up.addTitle(id, titleBytes(CHUNK, id), { chunkSize: CHUNK })
  const alone = await startTestEdge(t, { url: s.up.url, token: undefined }, {}, { REELCDN_EDGE_TOKEN: EDGE_CREDENTIAL })
  const r = await get(`${alone.url}/v1/peer/${id}/chunk/0`, ok)
  t.equal(r.status, 421)
  t.equal(JSON.parse(r.body.toString()).error.code, 'CDN_ERR_PEER_NO_SITE')
  t.equal(await metric(alone.url, 'reelcdn_edge_peer_refused_total', { reason: 'no_site' }), 1)
  const closed = await startTestEdge(t, { url: s.up.url, token: undefined }, { 'edge.site': 's1', 'edge.id': 'edge-c' })
  const c = await get(`${closed.url}/v1/peer/${id}/chunk/0`, ok)
  t.equal(c.status, 401, 'closed without a credential to check against')
  t.match(JSON.parse(c.body.toString()).error.message, /REELCDN_EDGE_TOKEN/)
})

t.test('one hop: the owner fills a cold chunk from the origin, never from a peer; disagreeing views end at the origin, not in a loop', async t => {
  const s = await startSite(t, ['edge-a', 'edge-b'], { 'edge.readaheadChunks': 0 })
  const [a, b] = s.edges as [typeof s.edges[0], typeof s.edges[0]]
  const id = titleOwnedBy(s.members(), 'edge-a')
  const body = titleBytes(CHUNK, id)
  await s.up.addTitle(id, body, { chunkSize: CHUNK, blocks: true })
  // the owner is cold: it fills through its own path, and asks nobody
  t.ok((await get(`${b.url}/v1/content/${id}`)).body.equals(body))
  await settled(a)
  t.equal(s.up.requests(id), 1, 'one origin fetch, by the owner')
  t.equal(await metric(a.url, 'reelcdn_edge_peer_served_total', { kind: 'chunk', from: 'fill' }), 1, 'the owner answered from its own fill')
  t.equal(await metric(a.url, 'reelcdn_edge_peer_fills_total'), 0, 'the owner never asked a peer')

  // each edge thinks the other owns the title: each asks the other once, each refuses (421), each fills from the origin
  const members = s.members()
  s.view = self => ({ members: members.map(m => ({ ...m, weight: m.id === self ? 1 : 1e9 })) })
  await s.up.addTitle('both', body, { chunkSize: CHUNK, blocks: true })
  const heard = s.up.requests()
  // wait for a heartbeat reply on each edge with the new views
  for (const e of s.edges) {
    const self = e.site.selfId
    await waitFor(() => e.site.peerFor('both')?.id !== undefined && e.site.peerFor('both')!.id !== self)
  }
  const [ga, gb] = await Promise.all([get(`${a.url}/v1/content/both`), get(`${b.url}/v1/content/both`)])
  t.ok(ga.body.equals(body) && gb.body.equals(body), 'both players served')
  await settled(a)
  await settled(b)
  t.equal(s.up.requests() - heard, 2, 'each edge fetched it once from the origin')
  for (const e of [a, b]) {
    t.ok(await metric(e.url, 'reelcdn_edge_peer_refused_total', { reason: 'not_owner' }) >= 1, `${e.site.selfId} refused the other's requests`)
    t.ok(await metric(e.url, 'reelcdn_edge_peer_fills_total', { outcome: 'refused' }) >= 1, `${e.site.selfId} counted its own request refused`)
    t.equal(await metric(e.url, 'reelcdn_edge_peer_served_total', { kind: 'chunk' }) - (e === a ? 1 : 0), 0, `${e.site.selfId} served nothing of it to a peer`)
  }
})

t.test('a sibling that stops waiting for the owner\'s answer was refused nothing: not counted nor logged as a refusal', async t => {
  const sink = logSink()
  const s = await startSite(t, ['edge-a', 'edge-b'], { 'edge.readaheadChunks': 0 }, { logger: id => createLogger(id, 'info', sink) })
  const a = s.edges[0]!
  const id = titleOwnedBy(s.members(), 'edge-a')
  await s.up.addTitle(id, titleBytes(2 * CHUNK, id), { chunkSize: CHUNK, blocks: true })
  // the owner's fill of the chunk waits upstream; the sibling gives up on it (as at its peer.firstByteTimeoutMs)
  s.up.hold(id, 1, 0)
  const req = http.request(`${a.url}/v1/peer/${id}/chunk/1`, { headers: ok, agent: false })
  req.on('error', () => {})
  req.end()
  await s.up.held(id, 1)
  req.destroy()
  await until(async () => (await metric(a.url, 'reelcdn_http_responses_aborted_total')) === 1, 'the owner to see the sibling leave')
  s.up.release(id, 1)
  await settled(a)
  t.equal(await metric(a.url, 'reelcdn_edge_peer_refused_total'), 0, 'no refusal counted')
  t.same(sink.lines.filter(l => /^peer request refused/.test(l.msg)), [], 'none logged')
})

async function waitFor(cond: () => boolean): Promise<void> {
  const end = Date.now() + 5000
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for the new site views')
    await new Promise(r => setTimeout(r, 5))
  }
}
