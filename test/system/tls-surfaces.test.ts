import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { mkdirSync } from 'node:fs'
import { Pool } from 'undici'
import { TestCluster, TOKEN, randomBody } from './harness.js'
import { startRouter } from '../../router/main.js'
import { quietLogger } from '../../lib/logger.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { sha256Hex } from '../../router/cluster/keys.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { startTestEdge } from '../helpers/edge.js'
import { selfSigned } from '../helpers/tls.js'

/**
 * The router and the edge serve HTTPS when given a certificate and key
 * (http.tlsCertFile, http.tlsKeyFile), and keep connections alive over it: a
 * player's requests after the first cost no new handshake.
 */
async function overOneConnection(t: Test, url: string, cert: string, paths: { path: string; range: string; want: Buffer }[]) {
  let connects = 0
  const pool = new Pool(url, { connections: 1, connect: { ca: readFileSync(cert) } })
  pool.on('connect', () => connects++)
  try {
    for (const p of paths) {
      const r = await pool.request({ path: p.path, method: 'GET', headers: { range: p.range } })
      const body = Buffer.from(await r.body.arrayBuffer())
      t.equal(r.statusCode, 206)
      t.ok(body.equals(p.want), `${p.path} ${p.range}: byte-exact over TLS`)
    }
  } finally {
    await pool.close()
  }
  t.equal(connects, 1, `${paths.length} requests over one TLS connection`)
}

t.test('the router serves HTTPS with keep-alive', async t => {
  const c = await TestCluster.start(t)
  const body = randomBody(300_000)
  t.equal((await c.ingest('tls', body)).status, 201)
  const dir = join(c.dir, 'tls')
  mkdirSync(dir, { recursive: true })
  const { cert, key } = selfSigned(dir)
  const r = await startRouter(c.config(undefined, { 'http.tlsCertFile': cert, 'http.tlsKeyFile': key }),
    { logger: quietLogger('router'), env: { REELCDN_ROUTER_TOKEN: TOKEN } })
  t.teardown(() => r.close())
  t.match(r.url, /^https:\/\//)
  await overOneConnection(t, r.url, cert, [
    { path: '/v1/content/tls', range: 'bytes=0-99', want: body.subarray(0, 100) },
    { path: '/v1/content/tls', range: 'bytes=65530-131100', want: body.subarray(65530, 131101) },
    { path: '/v1/content/tls/chunks/2', range: 'bytes=10-20', want: body.subarray(2 * 65536 + 10, 2 * 65536 + 21) },
  ])
  // an ingest over TLS too
  const pool = new Pool(r.url, { connect: { ca: readFileSync(cert) } })
  t.teardown(() => pool.close())
  const more = randomBody(100_000)
  const put = await pool.request({ path: '/v1/content/tls2', method: 'PUT', body: more,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-digest': digestHeader(sha256Hex(more)) } })
  await put.body.dump()
  t.equal(put.statusCode, 201, 'ingest over HTTPS')
  const plain = await fetch(r.url.replace('https:', 'http:') + '/healthz').then(() => 'answered', () => 'refused')
  t.equal(plain, 'refused', 'plain HTTP to the TLS port gets no answer')
})

t.test('the edge serves HTTPS with keep-alive', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const CS = 128 * 1024
  const bytes = titleBytes(3 * CS, 'tls-edge')
  await up.addTitle('tls', bytes, { chunkSize: CS })
  const dir = t.testdir()
  const { cert, key } = selfSigned(dir)
  const edge = await startTestEdge(t, up, { 'http.tlsCertFile': cert, 'http.tlsKeyFile': key })
  t.match(edge.url, /^https:\/\//)
  await overOneConnection(t, edge.url, cert, [
    { path: '/v1/content/tls', range: 'bytes=0-99', want: bytes.subarray(0, 100) },
    { path: '/v1/content/tls', range: `bytes=${CS - 10}-${2 * CS + 10}`, want: bytes.subarray(CS - 10, 2 * CS + 11) },
    { path: '/v1/content/tls', range: 'bytes=-1000', want: bytes.subarray(bytes.length - 1000) },
  ])
  await edge.close()
})
