import t from 'tap'
import { chmodSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { get, putChunk, rawGet, randomChunk, sha256, startTestOrigin } from '../test/helpers/origin.js'

const MiB = 1024 * 1024

t.test('a full 64 MiB chunk round-trips byte-exact, whole and in random ranges', async t => {
  const o = await startTestOrigin(t)
  const chunk = randomChunk(64 * MiB)
  const put = await putChunk(o.url, 'movie-1', 0, chunk)
  t.equal(put.status, 201)
  t.equal(put.json.size, 64 * MiB)
  const whole = await get(`${o.url}/v1/chunks/movie-1/0`)
  t.equal(whole.status, 200)
  t.equal(whole.headers.etag, `"${sha256(chunk)}"`)
  t.ok(whole.body.equals(chunk), 'whole chunk identical')
  for (let i = 0; i < 40; i++) {
    const start = Math.floor(Math.random() * chunk.length)
    const end = Math.min(chunk.length - 1, start + Math.floor(Math.random() * 3 * MiB))
    const r = await get(`${o.url}/v1/chunks/movie-1/0`, { range: `bytes=${start}-${end}` })
    t.equal(r.status, 206)
    if (!r.body.equals(chunk.subarray(start, end + 1))) t.fail(`range ${start}-${end} differs`)
  }
})

t.test('range edge cases follow RFC 9110', async t => {
  const o = await startTestOrigin(t, { 'origin.memoryCacheBytes': 0 })
  const chunk = randomChunk(300_000)
  await putChunk(o.url, 'r', 0, chunk)
  const url = `${o.url}/v1/chunks/r/0`
  const cases: [string, number, number, number][] = [
    ['bytes=0-0', 206, 0, 0], ['bytes=299999-299999', 206, 299999, 299999], ['bytes=-100', 206, 299900, 299999],
    ['bytes=250000-', 206, 250000, 299999], ['bytes=0-999999', 206, 0, 299999], ['bytes=-999999', 206, 0, 299999],
    ['bytes=65535-65536', 206, 65535, 65536],
  ]
  for (const [range, status, s, e] of cases) {
    const r = await get(url, { range })
    t.equal(r.status, status, range)
    t.equal(r.headers['content-range'], `bytes ${s}-${e}/300000`, range)
    t.equal(Number(r.headers['content-length']), e - s + 1, range)
    t.ok(r.body.equals(chunk.subarray(s, e + 1)), `${range} bytes`)
  }
  for (const range of ['bytes=300000-', 'bytes=-0', 'bytes=400000-500000']) {
    const r = await get(url, { range })
    t.equal(r.status, 416, range)
    t.equal(r.headers['content-range'], 'bytes */300000', range)
  }
  for (const range of ['bytes=5-1', 'bytes=abc', 'items=0-1', 'bytes=']) {
    const r = await get(url, { range })
    t.equal(r.status, 200, `invalid ${range} is ignored`)
    t.equal(r.body.length, 300000)
  }
  const head = await get(url, { range: 'bytes=0-9' }, 'HEAD')
  t.equal(head.status, 206)
  t.equal(head.headers['content-length'], '10')
  t.equal(head.body.length, 0)

  const multi = await get(url, { range: 'bytes=0-9,1000-1009' })
  t.equal(multi.status, 206)
  t.match(multi.headers['content-type'], /^multipart\/byteranges; boundary=/)
  const text = multi.body.toString('latin1')
  t.match(text, /content-range: bytes 0-9\/300000/)
  t.match(text, /content-range: bytes 1000-1009\/300000/)
  t.ok(multi.body.includes(chunk.subarray(1000, 1010)), 'second part bytes')
  t.equal(multi.body.length, Number(multi.headers['content-length']))
})

t.test('conditional requests: 304, If-Range, 412', async t => {
  const o = await startTestOrigin(t)
  const chunk = randomChunk(100_000)
  await putChunk(o.url, 'c', 0, chunk)
  const url = `${o.url}/v1/chunks/c/0`
  const etag = `"${sha256(chunk)}"`
  t.equal((await get(url, { 'if-none-match': etag })).status, 304)
  t.equal((await get(url, { 'if-none-match': '"other"' })).status, 200)
  const fresh = await get(url, { range: 'bytes=0-9', 'if-range': etag })
  t.equal(fresh.status, 206, 'If-Range with the current tag keeps the range')
  const stale = await get(url, { range: 'bytes=0-9', 'if-range': '"old"' })
  t.equal(stale.status, 200, 'If-Range with another tag sends the whole chunk')
  t.equal(stale.body.length, 100_000)
  t.equal((await get(url, { 'if-match': '"old"' })).status, 412)
})

t.test('PUT is idempotent for the same bytes and conflicts for others', async t => {
  const o = await startTestOrigin(t)
  const a = randomChunk(200_000)
  t.equal((await putChunk(o.url, 'm', 3, a)).status, 201)
  const again = await putChunk(o.url, 'm', 3, a)
  t.equal(again.status, 200)
  t.equal(again.json.sha256, sha256(a))
  const b = randomChunk(200_000)
  const conflict = await putChunk(o.url, 'm', 3, b)
  t.equal(conflict.status, 409)
  t.equal(conflict.json.error.code, 'CDN_ERR_CONFLICT')
  t.ok((await get(`${o.url}/v1/chunks/m/3`)).body.equals(a), 'the stored bytes are unchanged')
  // other bytes under the stored chunk's digest: the body is still checked, not taken on trust
  const liar = await putChunk(o.url, 'm', 3, b, sha256(a))
  t.equal(liar.status, 400, 'a re-PUT whose body does not match its digest is refused')
  t.equal(liar.json.error.code, 'CDN_ERR_DIGEST')
  const short = await putChunk(o.url, 'm', 3, a.subarray(0, 1000), sha256(a))
  t.equal(short.status, 400, 'and so is a short one')
  t.ok((await get(`${o.url}/v1/chunks/m/3`)).body.equals(a), 'the stored bytes are still unchanged')
  t.equal((await request(`${o.url}/v1/chunks/m/3`, { method: 'DELETE' })).statusCode, 204)
  t.equal((await get(`${o.url}/v1/chunks/m/3`)).status, 404)
  t.equal((await putChunk(o.url, 'm', 3, b)).status, 201, 'after a DELETE other bytes are accepted')
})

function leftovers(dataDir: string): string[] {
  const chunks = join(dataDir, 'chunks')
  return [...readdirSync(join(dataDir, 'tmp')), ...readdirSync(chunks).flatMap(d => readdirSync(join(chunks, d)))]
}

t.test('bad bodies are rejected and leave nothing behind', async t => {
  const o = await startTestOrigin(t, { 'cluster.chunkSize': 1 * MiB })
  const body = randomChunk(100_000)
  const mismatch = await putChunk(o.url, 'bad', 0, body, sha256(randomChunk(10)))
  t.equal(mismatch.status, 400)
  t.equal(mismatch.json.error.code, 'CDN_ERR_DIGEST')

  const big = randomChunk(MiB + 1)
  const declared = await putChunk(o.url, 'bad', 1, big)
  t.equal(declared.status, 413, 'oversize by Content-Length')

  // oversize without a Content-Length: chunked transfer, cut off at the limit
  const chunked = await request(`${o.url}/v1/chunks/bad/2`, {
    method: 'PUT', headers: { 'content-digest': `sha-256=:${Buffer.from(sha256(big), 'hex').toString('base64')}:` },
    body: Readable.from((function * () { for (let i = 0; i < big.length; i += 65536) yield big.subarray(i, i + 65536) })()),
  })
  t.equal(chunked.statusCode, 413, 'oversize while streaming')
  await chunked.body.dump()

  // short body: promise 100000 bytes, send 50000, then close
  const net = await import('node:net')
  const { port } = new URL(o.url)
  const status = await new Promise<string>((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () => {
      s.write(`PUT /v1/chunks/bad/3 HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\ncontent-digest: sha-256=:${Buffer.from(sha256(body), 'hex').toString('base64')}:\r\n\r\n`)
      s.write(body.subarray(0, 50000))
      setImmediate(() => s.end())
    })
    let got = ''
    s.on('data', d => { got += d })
    s.on('close', () => resolve(got.split('\r\n')[0] ?? ''))
    s.on('error', reject)
  })
  t.ok(status === '' || /^HTTP\/1.1 [45]/.test(status), `short body is not accepted (${status || 'connection closed'})`)
  const noDigest = await request(`${o.url}/v1/chunks/bad/4`, { method: 'PUT', body })
  t.equal(noDigest.statusCode, 400, 'a PUT without Content-Digest')
  t.match(await noDigest.body.text(), /Content-Digest/)

  // give the aborted upload's cleanup a moment to run: it is asynchronous with the socket close
  for (let i = 0; i < 50 && leftovers(o.store.dataDir).length; i++) await new Promise(r => setTimeout(r, 20))
  t.same(leftovers(o.store.dataDir), [], 'no temp or chunk files remain')
  const inv = await get(`${o.url}/v1/chunks`)
  t.same(JSON.parse(inv.body.toString()).chunks, [], 'no index rows')
})

t.test('hostile ids get a 400 that names the rule', async t => {
  const o = await startTestOrigin(t)
  for (const path of ['/v1/chunks/../0', '/v1/chunks/%2e%2e/0', '/v1/chunks/a%2fb/0', '/v1/chunks/a%00/0',
    `/v1/chunks/${'a'.repeat(129)}/0`, '/v1/chunks/.x/0', '/v1/chunks/a/01', '/v1/chunks/a/-1', '/v1/chunks/a/%30',
    '/v1/chunks/a%5c..%5cb/0', '/v1/chunks/%252e%252e/0', '/v1/manifests/..', '/v1/chunks/a..b/0']) {
    const r = await rawGet(o.url, path)
    t.equal(r.status, 400, path)
    t.match(JSON.parse(r.body.toString()).error.message, /shard key|contentId|chunk index/, path)
  }
  const put = await putChunk(o.url, 'a%2fb', 0, randomChunk(10))
  t.equal(put.status, 400)
})

t.test('a PUT that would go below the disk reserve gets 507 and leaves nothing', async t => {
  const o = await startTestOrigin(t, { 'origin.reserveBytes': Number.MAX_SAFE_INTEGER })
  const r = await putChunk(o.url, 'full', 0, randomChunk(1000))
  t.equal(r.status, 507)
  t.match(r.json.error.message, /reserve/)
  t.same(leftovers(o.store.dataDir), [])
  const status = JSON.parse((await get(`${o.url}/v1/status`)).body.toString())
  t.ok(status.disk.capacityBytes > 0 && status.disk.freeBytes > 0, 'capacity and usage reported')
})

t.test('the inventory pages through every chunk in key order', async t => {
  const o = await startTestOrigin(t)
  const want: string[] = []
  for (const id of ['b', 'a']) for (let i = 0; i < 3; i++) {
    await putChunk(o.url, id, i, randomChunk(100))
    want.push(`${id}/${i}`)
  }
  want.sort()
  const seen: string[] = []
  let cursor: string | null = ''
  while (cursor !== null) {
    const r = await get(`${o.url}/v1/chunks?limit=4${cursor ? `&after=${cursor}` : ''}`)
    const page = JSON.parse(r.body.toString()) as { chunks: { contentId: string; index: number }[]; next: string | null }
    seen.push(...page.chunks.map(c => `${c.contentId}/${c.index}`))
    cursor = page.next
  }
  t.same(seen, want)
  t.equal((await get(`${o.url}/v1/chunks?limit=0`)).status, 400)
})

t.test('manifests: validated, create-only with If-None-Match, deleted', async t => {
  const o = await startTestOrigin(t)
  const m = { contentId: 'film', version: 'v1', size: 10, chunkSize: 64 * MiB, sha256: 'a'.repeat(64), chunks: ['b'.repeat(64)],
    contentType: 'video/mp4', title: 'Film', categories: ['drama'], rights: { regions: ['*'], availableFrom: null, availableUntil: null }, createdAt: 1 }
  const put = (body: unknown, headers: Record<string, string> = {}) =>
    request(`${o.url}/v1/manifests/film`, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } })
  t.equal((await put(m)).statusCode, 201)
  t.equal((await put(m)).statusCode, 200)
  t.equal((await put({ ...m, title: 'Other' }, { 'if-none-match': '*' })).statusCode, 412)
  const bad = await put({ ...m, chunks: [] })
  t.equal(bad.statusCode, 400)
  t.match(await bad.body.text(), /expected 1 chunk digests/)
  const badJson = await request(`${o.url}/v1/manifests/film`, { method: 'PUT', body: '{nope' })
  t.equal(badJson.statusCode, 400)
  t.match(await badJson.body.text(), /not valid JSON/)
  const got = await get(`${o.url}/v1/manifests/film`)
  t.same(JSON.parse(got.body.toString()), m)
  t.equal((await request(`${o.url}/v1/manifests/film`, { method: 'DELETE' })).statusCode, 204)
  t.equal((await get(`${o.url}/v1/manifests/film`)).status, 404)
})

t.test('unknown routes and methods get 404 and 405', async t => {
  const o = await startTestOrigin(t)
  t.equal((await get(`${o.url}/nope`)).status, 404)
  const r = await request(`${o.url}/v1/chunks/a/0`, { method: 'POST' })
  t.equal(r.statusCode, 405)
  t.match(r.headers.allow, /PUT/)
  await r.body.dump()
  t.equal((await get(`${o.url}/healthz`)).status, 200)
  t.equal((await get(`${o.url}/readyz`)).status, 200)
})

t.test('a bearer token, when configured, guards the API', async t => {
  const dir = t.testdir({ token: 'sekrit\n' })
  chmodSync(join(dir, 'token'), 0o600) // a secret file others can read is refused (lib/security/secret-file.ts)
  const o = await startTestOrigin(t, { 'origin.tokenFile': join(dir, 'token') }, join(dir, 'data'))
  const no = await get(`${o.url}/v1/chunks`)
  t.equal(no.status, 401)
  t.equal((await get(`${o.url}/v1/chunks`, { authorization: 'Bearer wrong' })).status, 401)
  t.equal((await get(`${o.url}/v1/chunks`, { authorization: 'Bearer sekrit' })).status, 200)
  t.equal((await get(`${o.url}/healthz`)).status, 200, 'health stays open')
})

t.test("a chunk's block list comes in the data answer's head when asked for, and only then", async t => {
  const o = await startTestOrigin(t)
  const chunk = randomChunk(300_000)
  await putChunk(o.url, 'listed', 0, chunk)
  const crcs = await get(`${o.url}/v1/chunks/listed/0/crcs`)
  t.equal(crcs.body.length, 4 * 5, 'one CRC per 64 KiB block')
  const asked = await get(`${o.url}/v1/chunks/listed/0`, { range: 'bytes=70000-80000', 'reelcdn-want-block-crcs': '1' })
  t.equal(asked.status, 206)
  t.equal(asked.headers['reelcdn-block-crcs'], crcs.body.toString('base64'), 'the whole list, whatever the range')
  t.ok(asked.body.equals(chunk.subarray(70000, 80001)), 'and the bytes as before')
  const plain = await get(`${o.url}/v1/chunks/listed/0`, { range: 'bytes=0-99' })
  t.equal(plain.headers['reelcdn-block-crcs'], undefined, 'not asked: not sent')
})
