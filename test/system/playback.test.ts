import t from 'tap'
import { join } from 'node:path'
import { request } from 'undici'
import { createLogger, quietLogger } from '../../lib/logger.js'
import { logSink } from '../helpers/origin.js'
import { startRouter } from '../../router/main.js'
import { EDGE_TOKEN, TOKEN_KEYS, TestCluster, viewerCredential } from './harness.js'
import { until } from '../helpers/edge.js'

/**
 * The router's playback API over HTTP: heartbeats and steering, licensing,
 * demand reports → trending (kept across a restart, merged from a peer),
 * sessions and history.
 */
async function call(url: string, method: string, body?: unknown, token?: string) {
  const res = await request(url, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } })
  const text = await res.body.text()
  return { status: res.statusCode, json: (text ? JSON.parse(text) : null) as any }
}

const hb = (id: string, o: Partial<{ networks: string[]; regions: string[]; load: number; healthy: boolean }> = {}) => ({
  id, url: `http://${id}.example:8080`, networks: o.networks ?? [], regions: o.regions ?? [], healthy: o.healthy ?? true, load: o.load ?? 0, freeBytes: 1e9,
})

t.test('steering: edges on the client network first, then the less loaded, the origin last; a silent edge drops out', async t => {
  const c = await TestCluster.start(t, { overrides: { 'router.edgeSilenceMs': 400 } })
  t.equal((await c.ingest('movie', Buffer.alloc(100_000, 1))).status, 201)
  t.equal((await call(`${c.url}/v1/edges/heartbeat`, 'POST', hb('far'))).status, 401, 'a heartbeat needs the edge credential')
  t.equal((await call(`${c.url}/v1/edges/heartbeat`, 'POST', { ...hb('x'), networks: ['nonsense'] }, EDGE_TOKEN)).status, 400)
  t.equal((await call(`${c.url}/v1/edges/heartbeat`, 'POST', hb('busy', { load: 0.9 }), EDGE_TOKEN)).status, 200)
  t.equal((await call(`${c.url}/v1/edges/heartbeat`, 'POST', hb('idle', { load: 0.1 }), EDGE_TOKEN)).status, 200)
  t.equal((await call(`${c.url}/v1/edges/heartbeat`, 'POST', hb('local', { load: 0.95, networks: ['127.0.0.0/8'] }), EDGE_TOKEN)).status, 200)
  t.equal((await call(`${c.url}/v1/edges/heartbeat`, 'POST', hb('sick', { healthy: false }), EDGE_TOKEN)).status, 200)
  const p = await call(`${c.url}/v1/play/movie`, 'GET')
  t.equal(p.status, 200)
  t.same(p.json.urls.map((u: any) => u.id), ['local', 'idle', 'busy', 'origin'])
  t.ok(p.json.urls.every((u: any) => u.url.endsWith(`/v1/content/movie?token=${p.json.token}`)), 'every URL carries the token')
  t.match(p.json.urls[3].url, c.url)
  // only 'local' keeps sending heartbeats: the others fall silent and leave steering
  // one in flight when the cluster stops is cut: that is the teardown, not a failure
  const keep = setInterval(() => void call(`${c.url}/v1/edges/heartbeat`, 'POST', hb('local', { networks: ['127.0.0.0/8'] }), EDGE_TOKEN).catch(() => {}), 100)
  t.teardown(() => clearInterval(keep))
  await until(async () => (await call(`${c.url}/v1/play/movie`, 'GET')).json.urls.length === 2, 'the silent edges to leave steering')
  t.same((await call(`${c.url}/v1/play/movie`, 'GET')).json.urls.map((u: any) => u.id), ['local', 'origin'])
})

t.test('licensing: 451 outside the licensed regions, 403 outside the availability window, with the reason', async t => {
  const c = await TestCluster.start(t)
  const now = Date.now()
  await c.ingest('fr-only', Buffer.alloc(1000, 2), { meta: { rights: { regions: ['FR', 'BE'] } } })
  await c.ingest('later', Buffer.alloc(1000, 3), { meta: { rights: { regions: ['*'], availableFrom: now + 86_400_000 } } })
  await c.ingest('gone', Buffer.alloc(1000, 4), { meta: { rights: { regions: ['*'], availableUntil: now - 1000 } } })
  const de = await call(`${c.url}/v1/play/fr-only?region=DE`, 'GET')
  t.equal(de.status, 451)
  t.equal(de.json.error.code, 'CDN_ERR_NOT_LICENSED')
  t.match(de.json.error.message, /not licensed in DE \(licensed in FR, BE\)/)
  const unknown = await call(`${c.url}/v1/play/fr-only`, 'GET')
  t.equal(unknown.status, 451, 'an unknown region cannot show the license holds')
  t.match(unknown.json.error.message, /region is unknown/)
  t.equal((await call(`${c.url}/v1/play/fr-only?region=FR`, 'GET')).status, 200)
  const later = await call(`${c.url}/v1/play/later?region=FR`, 'GET')
  t.equal(later.status, 403)
  t.match(later.json.error.message, /not available before/)
  const gone = await call(`${c.url}/v1/play/gone`, 'GET')
  t.equal(gone.status, 403)
  t.match(gone.json.error.message, /has not been available since/)
  t.equal((await call(`${c.url}/v1/play/nope`, 'GET')).status, 404)
  t.equal((await call(`${c.url}/v1/play/fr-only?region=france`, 'GET')).status, 400)
})

t.test('demand reports feed trending over HTTP; a restart keeps the counts; a peer router merges them once', async t => {
  const c = await TestCluster.start(t)
  await c.ingest('drama-1', Buffer.alloc(1000, 5), { meta: { categories: ['Drama'] } })
  await c.ingest('comedy-1', Buffer.alloc(1000, 6), { meta: { categories: ['comedy'] } })
  const slices = Array.from({ length: 20 }, (_, i) => (i === 0 ? 8 : i === 19 ? 2 : 0))
  t.equal((await call(`${c.url}/v1/demand`, 'POST', { edgeId: 'e1', titles: [{ contentId: 'drama-1', plays: 5, slices }] })).status, 401)
  t.equal((await call(`${c.url}/v1/demand`, 'POST', { edgeId: 'e1', titles: [{ contentId: 'drama-1', plays: -1 }] }, EDGE_TOKEN)).status, 400)
  t.equal((await call(`${c.url}/v1/demand`, 'POST', { edgeId: 'e1', titles: [{ contentId: 'drama-1', plays: 5, slices }, { contentId: 'comedy-1', plays: 9 }] }, EDGE_TOKEN)).status, 200)
  const top = await call(`${c.url}/v1/trending?window=1h&limit=20&positions=1`, 'GET')
  t.same(top.json.titles.map((x: any) => [x.contentId, x.plays]), [['comedy-1', 9], ['drama-1', 5]])
  t.equal(top.json.titles[1].positions[0], 0.8)
  const drama = await call(`${c.url}/v1/trending?window=5m&category=drama`, 'GET')
  t.same(drama.json.titles.map((x: any) => x.contentId), ['drama-1'], 'category filter, ignoring case')
  t.equal((await call(`${c.url}/v1/trending?window=2h`, 'GET')).status, 400)
  t.equal((await call(`${c.url}/v1/trending?limit=0`, 'GET')).status, 400)

  await c.startRouter() // a restart: counters come back from SQLite
  const after = await call(`${c.url}/v1/trending?window=24h`, 'GET')
  t.same(after.json.titles.map((x: any) => [x.contentId, x.plays]), [['comedy-1', 9], ['drama-1', 5]])

  // a second router with its own reports, exchanging with the first by replacement
  const peer = await startRouter(c.config(3, { 'router.id': 'peer', 'router.peers': [c.url], 'router.dataDir': join(c.dir, 'peer') }),
    { logger: quietLogger('router'), env: { REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS } })
  t.teardown(() => peer.close())
  await call(`${peer.url}/v1/demand`, 'POST', { edgeId: 'e2', titles: [{ contentId: 'drama-1', plays: 10 }] }, EDGE_TOKEN)
  await peer.peers.exchange()
  await peer.peers.exchange() // twice: replacement, not addition
  const merged = await call(`${peer.url}/v1/trending?window=1h`, 'GET')
  t.same(merged.json.titles.map((x: any) => [x.contentId, x.plays]), [['drama-1', 15], ['comedy-1', 9]])
  // a peer's whole counter state (every title's, 186 counters each): for routers, which hold the edge credential
  const open = await call(`${peer.url}/v1/trending/state`, 'GET')
  t.equal(open.status, 401, 'not without the edge credential')
  t.match(open.json.error.message, /edge credential|bearer|authorization/i)
  t.equal((await call(`${peer.url}/v1/trending/state`, 'GET', undefined, 'not-the-credential')).status, 401, 'nor with another')
  const state = await call(`${peer.url}/v1/trending/state`, 'GET', undefined, EDGE_TOKEN)
  t.equal(state.json.routerId, 'peer')
  t.same(Object.keys(state.json.state).filter(k => !k.includes('#')), ['drama-1'], 'a router serves only its own counts')
})

t.test('sessions: positions by play token, resume and history, feeding per-position demand', async t => {
  const c = await TestCluster.start(t)
  await c.ingest('long', Buffer.alloc(65536 * 10, 7))
  await c.ingest('short', Buffer.alloc(1000, 8))
  const p = await call(`${c.url}/v1/play/long?viewer=${viewerCredential('alice')}`, 'GET')
  t.equal(p.json.viewerId, 'alice')
  t.equal(p.json.resume, null)
  const tok = p.json.token
  t.equal((await call(`${c.url}/v1/sessions/long`, 'PUT', { position: 5 })).status, 403, 'no token')
  t.equal((await call(`${c.url}/v1/sessions/long`, 'PUT', { position: -5 }, tok)).status, 400)
  t.equal((await call(`${c.url}/v1/sessions/short`, 'PUT', { position: 5 }, tok)).status, 403, 'a token of another title')
  t.equal((await call(`${c.url}/v1/sessions/long?token=${tok}`, 'PUT', { position: 65536 * 9 })).status, 200)
  const got = await call(`${c.url}/v1/sessions/long`, 'GET', undefined, tok)
  t.equal(got.json.position, 65536 * 9)
  t.equal((await call(`${c.url}/v1/play/long?viewer=${viewerCredential('alice')}`, 'GET')).json.resume.position, 65536 * 9, 'play offers the resume point')
  const tok2 = (await call(`${c.url}/v1/play/short?viewer=${viewerCredential('alice')}`, 'GET')).json.token
  await call(`${c.url}/v1/sessions/short`, 'PUT', { position: 10 }, tok2)
  const hist = await call(`${c.url}/v1/history`, 'GET', undefined, tok)
  t.same(hist.json.history.map((h: any) => h.contentId), ['short', 'long'])
  const pos = c.router.trending.positions('long', Date.now())!
  t.equal(pos[18], 1, 'the reported position counts in its slice')
})

t.test('a viewer is named by a credential, never a bare id: no one can claim another viewer\'s positions', async t => {
  const c = await TestCluster.start(t)
  await c.ingest('long', Buffer.alloc(65536 * 10, 7))
  const alice = await call(`${c.url}/v1/play/long?viewer=${viewerCredential('alice')}`, 'GET')
  t.equal((await call(`${c.url}/v1/sessions/long`, 'PUT', { position: 4096 }, alice.json.token)).status, 200)
  const bare = await call(`${c.url}/v1/play/long?viewer=alice`, 'GET')
  t.equal(bare.status, 403, 'a bare id is refused')
  t.match(bare.json.error.message, /bare viewer id is not accepted/)
  t.equal((await call(`${c.url}/v1/play/long?viewer=${alice.json.token}`, 'GET')).json.error.message, 'token rejected: not a viewer credential (a play token cannot name a viewer)',
    'alice\'s play token does not name her either')
  const forged = Buffer.from(JSON.stringify({ kid: 'k1', typ: 'viewer', vid: 'alice', exp: 2e9 })).toString('base64url') + '.AAAA'
  t.equal((await call(`${c.url}/v1/play/long?viewer=${forged}`, 'GET')).status, 403, 'a credential not signed by the keys')
  // an anonymous play makes up a viewer and hands out its credential; presenting it resumes that viewer, renewed
  const anon = await call(`${c.url}/v1/play/long`, 'GET')
  t.equal(anon.json.resume, null)
  t.ok(anon.json.viewer, 'the answer carries a viewer credential')
  t.equal((await call(`${c.url}/v1/sessions/long`, 'PUT', { position: 100 }, anon.json.token)).status, 200)
  const back = await call(`${c.url}/v1/play/long?viewer=${anon.json.viewer}`, 'GET')
  t.equal(back.json.viewerId, anon.json.viewerId)
  t.equal(back.json.resume.position, 100, 'its own position, not alice\'s')
  t.equal((await call(`${c.url}/v1/play/long?viewer=${viewerCredential('alice')}`, 'GET')).json.resume.position, 4096)
})

t.test('playback state survives a router restart and is shared by routers: the latest report wins', async t => {
  const c = await TestCluster.start(t)
  await c.ingest('film', Buffer.alloc(65536 * 10, 3))
  await c.ingest('clip', Buffer.alloc(1000, 4))
  const tok = (await call(`${c.url}/v1/play/film?viewer=${viewerCredential('bob')}`, 'GET')).json.token
  t.equal((await call(`${c.url}/v1/sessions/film`, 'PUT', { position: 1000 }, tok)).status, 200)
  await c.startRouter() // a restart: positions come back from SQLite
  t.equal((await call(`${c.url}/v1/sessions/film`, 'GET', undefined, tok)).json.position, 1000, 'the restarted router still knows bob\'s position')
  t.equal((await call(`${c.url}/v1/play/film?viewer=${viewerCredential('bob')}`, 'GET')).json.resume.position, 1000, 'and offers it in /v1/play')

  // a second router behind the same load balancer, each one the other's peer
  const b = await startRouter(c.config(3, { 'router.id': 'b', 'router.peers': [c.url], 'router.dataDir': join(c.dir, 'router-b') }),
    { logger: quietLogger('router'), env: { REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS } })
  t.teardown(() => b.close())
  await c.startRouter(3, { 'router.port': c.router.port, 'router.peers': [b.url] }) // same port: b's peer URL holds
  t.equal((await call(`${b.url}/v1/sessions/film`, 'GET', undefined, tok)).json.position, 1000, 'b finds the position a holds')
  t.equal((await call(`${b.url}/v1/play/film?viewer=${viewerCredential('bob')}`, 'GET')).json.resume.position, 1000, 'b offers a\'s resume point')
  t.equal((await call(`${b.url}/v1/sessions/film?local=1`, 'GET', undefined, tok)).status, 404, 'b itself holds nothing')
  // the next report lands on b: both now answer b's, the later one
  await until(async () => (await call(`${b.url}/v1/sessions/film`, 'PUT', { position: 5000 }, tok)).json.updatedAt >
    (await call(`${c.url}/v1/sessions/film?local=1`, 'GET', undefined, tok)).json.updatedAt, 'a report later than a\'s')
  t.equal((await call(`${c.url}/v1/sessions/film`, 'GET', undefined, tok)).json.position, 5000, 'a answers b\'s later report')
  t.equal((await call(`${b.url}/v1/sessions/film`, 'GET', undefined, tok)).json.position, 5000)
  t.equal((await call(`${c.url}/v1/sessions/film?local=1`, 'GET', undefined, tok)).json.position, 1000, 'a still holds its own, older one')
  // history merges both routers' titles, most recent first
  const tok2 = (await call(`${c.url}/v1/play/clip?viewer=${viewerCredential('bob')}`, 'GET')).json.token
  await until(async () => (await call(`${c.url}/v1/sessions/clip`, 'PUT', { position: 10 }, tok2)).json.updatedAt >
    (await call(`${b.url}/v1/sessions/film?local=1`, 'GET', undefined, tok)).json.updatedAt, 'a report later than b\'s')
  for (const r of [c.url, b.url]) {
    const h = await call(`${r}/v1/history`, 'GET', undefined, tok)
    t.same(h.json.history.map((x: any) => [x.contentId, x.position]), [['clip', 10], ['film', 5000]], `history at ${r === b.url ? 'b' : 'a'}`)
  }
  // a peer that is down leaves its reports out of the answer, not the answer out
  await b.close()
  t.equal((await call(`${c.url}/v1/sessions/film`, 'GET', undefined, tok)).json.position, 1000, 'with b down, a answers what it holds')
})

t.test('several routers: an edge heartbeating to one is steered to by its peers, and leaves their steering when silent', async t => {
  const c = await TestCluster.start(t, { overrides: { 'router.edgeSilenceMs': 600 } })
  await c.ingest('movie', Buffer.alloc(1000, 1))
  const b = await startRouter(c.config(3, { 'router.id': 'b', 'router.peers': [c.url], 'router.dataDir': join(c.dir, 'router-b'), 'router.edgeSilenceMs': 600 }),
    { logger: quietLogger('router'), env: { REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: TOKEN_KEYS } })
  t.teardown(() => b.close())
  const ids = async (url: string) => (await call(`${url}/v1/play/movie`, 'GET')).json.urls.map((u: any) => u.id)
  t.equal((await call(`${c.url}/v1/edges/state`, 'GET')).status, 401, 'the state needs the edge credential')
  t.equal((await call(`${c.url}/v1/edges/heartbeat`, 'POST', hb('e1'), EDGE_TOKEN)).status, 200)
  t.same(await ids(b.url), ['origin'], 'before an exchange b knows nothing of e1')
  await b.edgePeers.exchange()
  t.same(await ids(b.url), ['e1', 'origin'], 'b steers to the edge that heartbeats to a')
  t.same((await call(`${b.url}/v1/edges/state`, 'GET', undefined, EDGE_TOKEN)).json.edges, [], 'b serves only its own heartbeats')
  // e1 falls silent: b's exchanges keep a's last heartbeat, which ages out
  await until(async () => { await b.edgePeers.exchange(); return (await ids(b.url)).length === 1 }, 'e1 to leave b\'s steering')
  t.same(await ids(c.url), ['origin'], 'and a\'s')
})

t.test('a router without play-token keys: its playback routes answer 503 naming what to set, said once at start, not an error per request', async t => {
  const c = await TestCluster.start(t)
  await c.ingest('movie', Buffer.alloc(1000, 1))
  const sink = logSink()
  const bare = await startRouter(c.config(3, { 'router.dataDir': join(c.dir, 'bare'), 'log.level': 'info', 'router.fillGrants.enabled': false }),
    { logger: createLogger('router', 'info', sink), env: { REELCDN_EDGE_TOKEN: EDGE_TOKEN } })
  t.teardown(() => bare.close())
  const warned = sink.lines.filter(l => l.level === 40 && /REELCDN_TOKEN_KEYS/.test(l.msg))
  t.equal(warned.length, 1, 'one warning at start names the keys')
  for (const [path, method, body] of [['/v1/play/movie', 'GET'], ['/v1/sessions/movie?token=x', 'PUT', { position: 1 }], ['/v1/history?token=x', 'GET']] as const) {
    for (let i = 0; i < 3; i++) {
      const r = await call(`${bare.url}${path}`, method, body)
      t.equal(r.status, 503, `${method} ${path}`)
      t.match(r.json.error.message, /REELCDN_TOKEN_KEYS/, 'the answer names what to set')
    }
  }
  // fill grants turned off (router.fillGrants.enabled): an edge's grant request is refused the same way, and edges fill through /chunks
  for (let i = 0; i < 3; i++) {
    const r = await call(`${bare.url}/v1/content/movie/fill/0`, 'GET')
    t.equal(r.status, 503)
    t.equal(r.json.error.code, 'CDN_ERR_FILL_GRANTS_DISABLED', 'the code edges branch on')
  }
  t.same(sink.lines.filter(l => l.level >= 50).map(l => l.msg), [], 'nothing at level 50')
})
