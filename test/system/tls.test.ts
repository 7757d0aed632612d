import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { startTestOrigin, randomChunk } from '../helpers/origin.js'
import { selfSigned } from '../helpers/tls.js'

t.test('a shard serves HTTPS with keep-alive when given a certificate and key', async t => {
  const dir = t.testdir()
  const { cert, key } = selfSigned(dir)
  const o = await startTestOrigin(t, { 'http.tlsCertFile': cert, 'http.tlsKeyFile': key }, join(dir, 'data'))
  t.match(o.url, /^https:\/\//)
  const body = randomChunk(200_000)
  let connects = 0
  const pool = new Pool(o.url, { connections: 1, connect: { ca: readFileSync(cert) } })
  pool.on('connect', () => connects++)
  t.teardown(() => pool.close())
  const { statusCode } = await pool.request({ path: '/v1/chunks/tls/0', method: 'PUT', body,
    headers: { 'content-digest': `sha-256=:${(await import('node:crypto')).createHash('sha256').update(body).digest('base64')}:` } })
    .then(async r => { await r.body.dump(); return r })
  t.equal(statusCode, 201)
  for (let i = 0; i < 3; i++) {
    const r = await pool.request({ path: '/v1/chunks/tls/0', method: 'GET', headers: { range: 'bytes=0-99' } })
    t.ok(Buffer.from(await r.body.arrayBuffer()).equals(body.subarray(0, 100)))
  }
  t.equal(connects, 1, 'four requests over one TLS connection')
})

t.test('a missing certificate stops start-up with a message naming the settings', async t => {
  await t.rejects(startTestOrigin(t, { 'http.tlsCertFile': '/nonexistent/cert.pem', 'http.tlsKeyFile': '/nonexistent/key.pem' }),
    /http\.tlsCertFile/)
  await t.rejects(startTestOrigin(t, { 'http.tlsCertFile': '/x.pem' }), /set both or neither/)
})
