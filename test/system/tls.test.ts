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

t.test('a service serving TLS exports its certificate\'s expiry; one without TLS exports none', async t => {
  const dir = t.testdir()
  const { cert, key } = selfSigned(dir)
  const notAfter = Date.parse(new (await import('node:crypto')).X509Certificate(readFileSync(cert)).validTo) / 1000
  const o = await startTestOrigin(t, { 'http.tlsCertFile': cert, 'http.tlsKeyFile': key }, join(dir, 'data'))
  const pool = new Pool(o.url, { connect: { ca: readFileSync(cert) } })
  t.teardown(() => pool.close())
  const text = await (await pool.request({ path: '/metrics', method: 'GET' })).body.text()
  const m = /^reelcdn_tls_certificate_expiry_timestamp_seconds\{[^}]*\} (\S+)$/m.exec(text)
  t.ok(m, 'the expiry gauge is exported')
  t.equal(Number(m?.[1]), notAfter, 'the certificate\'s notAfter, in Unix seconds')
  t.ok(notAfter - Date.now() / 1000 > 3600 && notAfter - Date.now() / 1000 <= 86400 + 60, 'a day ahead (selfSigned makes one-day certificates)')
  const plain = await startTestOrigin(t, {}, join(dir, 'plain'))
  const res = await fetch(`${plain.url}/metrics`)
  t.notMatch(await res.text(), /reelcdn_tls_certificate_expiry/, 'no TLS, no gauge')
})
