import t from 'tap'
import { request } from 'undici'
import { TestCluster, randomBody } from '../system/harness.js'

/**
 * Issue 14, item 8 (review): lib/http/http-conformance.ts said in one place that
 * PATCH is answered 501 and in another 405, while the code lets it through
 * to the route, which answers 405. RFC 9110 §15.5.6: 405 is for a method the
 * server knows that the target resource does not take (with Allow, §10.2.1);
 * §15.6.2: 501 for one it does not recognize. PATCH (RFC 5789) is known, so
 * 405 with Allow, on a route that writes as on one that only reads; a token
 * no RFC defines is 501. The comment now says what the code does; this test
 * holds both on a shard and a router (the battery in
 * test/helpers/hostile-http.ts does on every surface's good path).
 */
async function answer(url: string, method: string) {
  const r = await request(url, { method, headers: { 'content-length': '0' } })
  const body = await r.body.json() as { error: { code: string; message: string } }
  return { status: r.statusCode, allow: r.headers.allow, code: body.error.code, message: body.error.message }
}

t.test('PATCH is 405 with Allow where a route exists, an unknown method 501, on the shard and the router', async t => {
  const c = await TestCluster.start(t, { chunkSize: 65536 })
  t.equal((await c.ingest('film', randomBody(100_000))).status, 201)
  const routes = [
    { what: 'the router: a title (GET, PUT, DELETE)', url: `${c.url}/v1/content/film`, takes: ['GET', 'HEAD', 'PUT', 'DELETE'] },
    { what: 'the router: the cluster view (GET only)', url: `${c.url}/v1/cluster`, takes: ['GET', 'HEAD'] },
    { what: 'a shard: its chunk list', url: `${c.shards[0]!.url}/v1/chunks`, takes: ['GET', 'HEAD'] },
  ]
  for (const r of routes) {
    const patch = await answer(r.url, 'PATCH')
    t.match(patch, { status: 405, code: 'CDN_ERR_METHOD', message: /PATCH/ }, `${r.what}: PATCH is 405`)
    const allow = String(patch.allow).split(/, */)
    t.ok(r.takes.every(m => allow.includes(m)) && !allow.includes('PATCH'), `${r.what}: Allow: ${patch.allow}`)
    t.match(await answer(r.url, 'FROB'), { status: 501, code: 'CDN_ERR_UNKNOWN_METHOD', message: /FROB/ }, `${r.what}: an unknown method is 501`)
  }
})
