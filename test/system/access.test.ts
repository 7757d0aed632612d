import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { TestCluster, TOKEN, EDGE_TOKEN, randomBody } from './harness.js'
import { startTestEdge, get, until } from '../helpers/edge.js'
import { CLI, exited } from '../helpers/spawn.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { sha256Hex } from '../../router/cluster/keys.js'

/**
 * Who may do what. Admin routes (ingest, delete, repair and the edge registry
 * on a router; purge, cache status and prefill control on an edge) need the
 * admin token and are closed when none is configured.
 * With a read token set, the router serves content only to holders of it (the
 * edges' fill credential) or of the admin token. Secrets never reach a log line.
 */
const READ = 'edge-fill-credential-5f2a'

t.test('every admin route needs the admin token', async t => {
  const c = await TestCluster.start(t)
  t.equal((await c.ingest('adm', randomBody(70_000))).status, 201)
  for (const [method, path] of [['PUT', '/v1/content/adm2'], ['DELETE', '/v1/content/adm'], ['POST', '/v1/cluster/repair']] as const) {
    for (const auth of [undefined, 'Bearer wrong', `Bearer ${TOKEN}x`, TOKEN, `Basic ${TOKEN}`]) {
      const r = await get(`${c.url}${path}`, auth ? { authorization: auth } : {}, method)
      t.equal(r.status, 401, `${method} ${path} with ${auth ?? 'no token'}: 401`)
      t.match(JSON.parse(r.body.toString()).error, { code: 'CDN_ERR_UNAUTHORIZED' })
    }
  }
  t.equal((await c.get('/v1/content/adm')).status, 200, 'the title is still there')

  const edge = await startTestEdge(t, { url: c.url, token: undefined }, {}, { REELCDN_EDGE_ADMIN_TOKEN: 'edge-admin' })
  for (const [method, path] of [['DELETE', '/v1/cache/adm'], ['GET', '/v1/cache']] as const) {
    for (const auth of [undefined, 'Bearer wrong', `Bearer ${TOKEN}`])
      t.equal((await get(`${edge.url}${path}`, auth ? { authorization: auth } : {}, method)).status, 401, `edge ${method} ${path} with ${auth ?? 'no token'}`)
    t.equal((await get(`${edge.url}${path}`, { authorization: 'Bearer edge-admin' }, method)).status, 200, `edge ${method} ${path} with its token`)
  }
  const open = await startTestEdge(t, { url: c.url, token: undefined })
  const r = await get(`${open.url}/v1/cache`)
  t.equal(r.status, 401, 'an edge without an admin token refuses its admin routes')
  t.match(r.body.toString(), /REELCDN_EDGE_ADMIN_TOKEN/, 'and says how to set one')
  // closed here, not at teardown: tap empties the test directory first, and a disk write in flight would race it
  await edge.close()
  await open.close()
})

t.test('with a read token, content reads need it: edges fill with it, strangers get 401', async t => {
  const c = await TestCluster.start(t, { chunkSize: 65536 })
  // restart the router with the read token (the harness passes env through startRouter's env only for the admin token)
  const { startRouter } = await import('../../router/main.js')
  const { quietLogger } = await import('../../lib/logger.js')
  await c.router.close()
  c.router = await startRouter(c.config(), { logger: quietLogger('router'), env: { REELCDN_ROUTER_TOKEN: TOKEN, REELCDN_ROUTER_READ_TOKEN: READ } })
  await c.router.cluster.health.checkAll()
  const body = randomBody(200_000)
  t.equal((await c.ingest('sealed', body)).status, 201, 'ingest with the admin token')
  for (const path of ['/v1/content/sealed', '/v1/content/sealed/meta', '/v1/content/sealed/chunks/0', '/v1/content?q=sealed']) {
    t.equal((await c.get(path)).status, 401, `${path} without a token`)
    t.equal((await c.get(path, { authorization: 'Bearer nope' })).status, 401, `${path} with a wrong token`)
    t.equal((await c.get(path, { authorization: `Bearer ${READ}` })).status, 200, `${path} with the read token`)
    t.equal((await c.get(path, { authorization: `Bearer ${TOKEN}` })).status, 200, `${path} with the admin token`)
  }
  t.equal((await c.get('/v1/cluster')).status, 200, '/v1/cluster stays public')
  t.equal((await get(`${c.url}/v1/content/x`, { authorization: `Bearer ${READ}` }, 'PUT')).status, 401, 'the read token is not an admin token')

  const edge = await startTestEdge(t, { url: c.url, token: READ })
  const r = await get(`${edge.url}/v1/content/sealed`, { range: 'bytes=1000-99999' })
  t.equal(r.status, 206)
  t.ok(r.body.equals(body.subarray(1000, 100_000)), 'an edge with the credential fills and serves')
  const stranger = await startTestEdge(t, { url: c.url, token: undefined })
  const s = await get(`${stranger.url}/v1/content/sealed`)
  t.equal(s.status, 502, 'an edge without it cannot fill: 502')
  t.match(s.body.toString(), /401/, 'naming the upstream\'s answer')
  await edge.close()
  await stranger.close()
})

t.test('prefill control on the edge and the router\'s edge registry need the admin token', async t => {
  const CS = 65536
  const c = await TestCluster.start(t, { chunkSize: CS })
  t.equal((await c.ingest('pf', randomBody(8 * CS))).status, 201)
  const post = async (url: string, body: object, auth: string) => {
    const { request } = await import('undici')
    const res = await request(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: auth } })
    return { status: res.statusCode, text: await res.body.text() }
  }
  // demand for every chunk of pf, so a prefill pass has work to do
  t.equal((await post(`${c.url}/v1/demand`, { edgeId: 'reporter', titles: [{ contentId: 'pf', plays: 10, slices: Array(20).fill(5) }] },
    `Bearer ${EDGE_TOKEN}`)).status, 200)
  t.equal((await post(`${c.url}/v1/edges/heartbeat`, { id: 'edge-x', url: 'http://127.0.0.1:9', networks: [], healthy: true, load: 0, freeBytes: 0 },
    `Bearer ${EDGE_TOKEN}`)).status, 200, 'an edge heartbeats with the edge credential')

  // the registry lists where players get sent: the admin token only, not the edge credential that feeds it
  for (const auth of [undefined, 'Bearer wrong', `Bearer ${EDGE_TOKEN}`, `Bearer ${TOKEN}x`, TOKEN, `Basic ${TOKEN}`]) {
    const r = await get(`${c.url}/v1/edges`, auth ? { authorization: auth } : {})
    t.equal(r.status, 401, `GET /v1/edges with ${auth ?? 'no token'}: 401`)
    t.notMatch(r.body.toString(), /edge-x/, 'and no registry in the answer')
  }
  const listed = await get(`${c.url}/v1/edges`, { authorization: `Bearer ${TOKEN}` })
  t.equal(listed.status, 200, 'GET /v1/edges with the admin token')
  t.match(JSON.parse(listed.body.toString()).edges, [{ id: 'edge-x', url: 'http://127.0.0.1:9' }], 'lists the edge that heartbeat')

  // a slow pass (about 1.3 s per chunk at 0.05 MB/s), so a refused stop can be seen not to stop it
  const edge = await startTestEdge(t, { url: c.url, token: undefined },
    { 'edge.prefill.rateMBps': 0.05, 'edge.prefill.quietMs': 0 }, { REELCDN_EDGE_ADMIN_TOKEN: 'edge-admin' })
  const wrong = [undefined, 'Bearer wrong', `Bearer ${TOKEN}`, `Bearer ${EDGE_TOKEN}`, 'edge-admin']
  for (const auth of wrong) {
    const r = await get(`${edge.url}/v1/prefill/start`, auth ? { authorization: auth } : {}, 'POST')
    t.equal(r.status, 401, `POST /v1/prefill/start with ${auth ?? 'no token'}: 401`)
  }
  t.equal(edge.prefill.progress, null, 'no pass was started')
  const started = await get(`${edge.url}/v1/prefill/start`, { authorization: 'Bearer edge-admin' }, 'POST')
  t.equal(started.status, 202, 'POST /v1/prefill/start with the edge admin token: 202')
  t.match(JSON.parse(started.body.toString()), { started: true })
  await until(() => (edge.prefill.progress?.doneChunks ?? 0) >= 1, 'the pass to fetch its first chunk')
  for (const auth of wrong) {
    const r = await get(`${edge.url}/v1/prefill/stop`, auth ? { authorization: auth } : {}, 'POST')
    t.equal(r.status, 401, `POST /v1/prefill/stop with ${auth ?? 'no token'}: 401`)
  }
  t.ok(edge.prefill.running, 'the pass is still running')
  t.equal(edge.prefill.progress?.result ?? null, null, 'and has not ended')
  const stopped = await get(`${edge.url}/v1/prefill/stop`, { authorization: 'Bearer edge-admin' }, 'POST')
  t.equal(stopped.status, 200, 'POST /v1/prefill/stop with the edge admin token: 200')
  t.match(JSON.parse(stopped.body.toString()), { state: 'stopped', progress: { result: 'stopped' } }, 'the pass stopped')
  t.notOk(edge.prefill.running)
  t.ok(edge.prefill.progress!.doneChunks < 8, `stopped after ${edge.prefill.progress!.doneChunks} of 8 chunks`)
  await edge.close()
})

/** A child process whose every output line is kept, for grepping. */
function run(args: string[], env: NodeJS.ProcessEnv, readyMsg: string) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const out: string[] = []
  child.stderr!.on('data', d => out.push(String(d)))
  const ready = new Promise<string>((resolve, reject) => {
    child.once('exit', code => reject(new Error(`${args[0]} exited with ${code}: ${out.join('')}`)))
    createInterface({ input: child.stdout! }).on('line', l => {
      out.push(l)
      try {
        const j = JSON.parse(l) as { msg?: string; url?: string }
        if (j.msg === readyMsg && j.url) resolve(j.url)
      } catch { /* not JSON */ }
    })
  })
  return { child, out, ready }
}

t.test('tokens never reach a log line or a command line, whatever the requests', async t => {
  const c = await TestCluster.start(t)
  const dir = join(c.dir, 'logs')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(dir, { recursive: true })
  const secrets = { admin: 'admin-secret-7c1e9d', read: 'read-secret-2b8f04', edgeAdmin: 'edge-admin-secret-91aa3c', play: 'play-token-secret-5d3e0a' }
  const cfg = join(dir, 'router.json')
  writeFileSync(cfg, JSON.stringify({ cluster: { chunkSize: 65536, shards: c.ports.map((p, i) => ({ id: `shard-${i + 1}`, url: `http://127.0.0.1:${p}`, weight: 1 })) },
    router: { dataDir: join(dir, 'router') } }))
  const router = run(['router', '--config', cfg, '--port', '0', '--log-level', 'trace', '--repair-interval', '0'],
    { REELCDN_ROUTER_TOKEN: secrets.admin, REELCDN_ROUTER_READ_TOKEN: secrets.read, REELCDN_LOG_REQUESTS: 'true' }, 'router ready')
  const rurl = await router.ready
  const edge = run(['edge', '--upstream', rurl, '--port', '0', '--data-dir', join(dir, 'edge'), '--log-level', 'trace'],
    { REELCDN_EDGE_UPSTREAM_TOKEN: secrets.read, REELCDN_EDGE_ADMIN_TOKEN: secrets.edgeAdmin, REELCDN_LOG_REQUESTS: 'true' }, 'edge ready')
  const eurl = await edge.ready

  const body = randomBody(150_000)
  const put = (auth: string, id = 'logged') => get(`${rurl}/v1/content/${id}`, { authorization: auth, 'content-digest': digestHeader(sha256Hex(body)) }, 'PUT')
  t.equal((await put(`Bearer ${secrets.read}`)).status, 401, 'a wrong token is refused (and may be logged as a request)')
  t.equal((await put(`Bearer ${secrets.admin}`, 'bad..id')).status, 400)
  const { request } = await import('undici')
  const ok = await request(`${rurl}/v1/content/logged`, { method: 'PUT', body, headers: { authorization: `Bearer ${secrets.admin}`, 'content-digest': digestHeader(sha256Hex(body)) } })
  await ok.body.dump()
  t.equal(ok.statusCode, 201)
  t.equal((await get(`${eurl}/v1/content/logged`)).status, 200, 'an edge fill carrying the read token')
  t.equal((await get(`${eurl}/v1/cache/logged`, { authorization: `Bearer ${secrets.admin}` }, 'DELETE')).status, 401)
  t.equal((await get(`${eurl}/v1/cache/logged`, { authorization: `Bearer ${secrets.edgeAdmin}` }, 'DELETE')).status, 200)
  t.equal((await get(`${eurl}/v1/content/missing`)).status, 404)
  // a play token in the query (how players send it) is logged as [redacted]
  t.equal((await get(`${eurl}/v1/content/missing?token=${secrets.play}`)).status, 404)
  t.equal((await get(`${rurl}/v1/content/logged?x=1&token=${secrets.play}`)).status, 401)
  await c.stopShard(0) // failures on the fill path get logged as warnings
  await c.stopShard(1)
  await c.stopShard(2)
  t.ok((await get(`${eurl}/v1/content/logged`)).status >= 500, 'a failed fill with the shards gone')

  for (const p of [router, edge]) {
    const cmdline = readFileSync(`/proc/${p.child.pid}/cmdline`, 'utf8')
    for (const [name, s] of Object.entries(secrets)) t.notOk(cmdline.includes(s), `the ${name} token is not on a command line`)
    p.child.kill('SIGTERM')
    await exited(p.child)
  }
  const logs = router.out.join('\n') + edge.out.join('\n')
  t.ok(logs.split('\n').length > 10, `${logs.split('\n').length} log lines to check`)
  t.match(logs, /"msg":"request"/, 'request logging was on')
  for (const [name, s] of Object.entries(secrets)) t.notOk(logs.includes(s), `the ${name} token is in no log line`)
  t.notOk(/authorization/i.test(logs), 'no Authorization header is logged')
  t.match(logs, /token=\[redacted\]/, 'the requests with a token in the query were logged, without it')
})
