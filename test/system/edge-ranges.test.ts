import t from 'tap'
import { startContentUpstream } from '../helpers/upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge } from '../helpers/edge.js'

/**
 * The player contract, case by case (RFC 9110 §13-14), byte-exact against the
 * source. Only the ContentUpstream interface is used, so this file can run
 * against the real router and origin shards as well as the fake.
 */
const CS = 128 * 1024
const SIZE = 3 * CS + 1000

t.test('range semantics through the edge', async t => {
  const up = await startContentUpstream(t)
  const bytes = titleBytes(SIZE, 'ranges')
  const m = await up.addTitle('ranges-1', bytes, { chunkSize: CS, contentType: 'video/mp4' })
  await up.addTitle('empty-1', Buffer.alloc(0), { chunkSize: CS })
  const edge = await startTestEdge(t, up)
  const url = `${edge.url}/v1/content/ranges-1`
  const etag = `"${m.sha256}"`
  const lastModified = new Date(m.createdAt).toUTCString()

  await t.test('no Range: 200, the whole title, with the representation headers', async t => {
    const r = await get(url)
    t.equal(r.status, 200)
    t.ok(r.body.equals(bytes))
    t.equal(r.headers['content-length'], String(SIZE))
    t.equal(r.headers['content-type'], 'video/mp4')
    t.equal(r.headers['accept-ranges'], 'bytes')
    t.equal(r.headers.etag, etag)
    t.equal(r.headers['last-modified'], lastModified)
    t.match(r.headers['cache-control'], /immutable/)
    t.equal(r.headers['repr-digest'], `sha-256=:${Buffer.from(m.sha256, 'hex').toString('base64')}:`)
  })

  await t.test('one range: 206 with Content-Range, within and across chunks', async t => {
    for (const [h, s, e] of [
      ['bytes=0-0', 0, 0], ['bytes=100-199', 100, 199], [`bytes=${CS - 10}-${CS + 9}`, CS - 10, CS + 9],
      [`bytes=${CS - 1}-${2 * CS + 5}`, CS - 1, 2 * CS + 5], ['bytes=-100', SIZE - 100, SIZE - 1],
      [`bytes=${SIZE - 1}-`, SIZE - 1, SIZE - 1], ['bytes=5-', 5, SIZE - 1], [`bytes=0-${SIZE * 10}`, 0, SIZE - 1],
    ] as const) {
      const r = await get(url, { range: h })
      t.equal(r.status, 206, h)
      t.equal(r.headers['content-range'], `bytes ${s}-${e}/${SIZE}`, h)
      t.equal(r.headers['content-length'], String(e - s + 1), h)
      t.ok(r.body.equals(bytes.subarray(s, e + 1)), `${h}: bytes equal the source`)
    }
  })

  await t.test('random ranges are byte-exact', async t => {
    let seed = 7
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
    for (let i = 0; i < 40; i++) {
      const s = rnd(SIZE)
      const e = Math.min(SIZE - 1, s + rnd(CS * 2))
      const r = await get(url, { range: `bytes=${s}-${e}` })
      if (r.status !== 206 || !r.body.equals(bytes.subarray(s, e + 1))) t.fail(`bytes=${s}-${e}: ${r.status}`)
    }
    t.pass('40 random ranges')
  })

  await t.test('unsatisfiable: 416 with Content-Range bytes */size and a JSON error', async t => {
    for (const h of [`bytes=${SIZE}-`, `bytes=${SIZE + 5}-${SIZE + 10}`, 'bytes=-0']) {
      const r = await get(url, { range: h })
      t.equal(r.status, 416, h)
      t.equal(r.headers['content-range'], `bytes */${SIZE}`)
      t.equal(JSON.parse(r.body.toString()).error.code, 'CDN_ERR_RANGE')
    }
    t.equal((await get(`${edge.url}/v1/content/empty-1`, { range: 'bytes=0-' })).status, 416, 'nothing to range over in an empty title')
  })

  await t.test('a Range that does not parse is ignored: 200', async t => {
    for (const h of ['bytes=5-1', 'bytes=abc', 'items=0-1', 'bytes=', 'bytes 0-1']) {
      const r = await get(url, { range: h })
      t.equal(r.status, 200, h)
      t.equal(r.body.length, SIZE)
    }
  })

  await t.test('several ranges: multipart/byteranges, each part byte-exact', async t => {
    const r = await get(url, { range: `bytes=0-9, ${CS}-${CS + 99}, -5` })
    t.equal(r.status, 206)
    const ct = String(r.headers['content-type'])
    const boundary = /boundary=(\S+)/.exec(ct)?.[1]
    t.ok(ct.startsWith('multipart/byteranges') && boundary)
    t.equal(r.headers['content-length'], String(r.body.length))
    const parts = parseMultipart(r.body, boundary!)
    t.same(parts.map(p => p.range), [`bytes 0-9/${SIZE}`, `bytes ${CS}-${CS + 99}/${SIZE}`, `bytes ${SIZE - 5}-${SIZE - 1}/${SIZE}`])
    t.ok(parts[0]!.body.equals(bytes.subarray(0, 10)))
    t.ok(parts[1]!.body.equals(bytes.subarray(CS, CS + 100)))
    t.ok(parts[2]!.body.equals(bytes.subarray(SIZE - 5)))
  })

  await t.test('conditionals: If-Range, If-None-Match, If-Modified-Since, If-Match', async t => {
    t.equal((await get(url, { range: 'bytes=0-9', 'if-range': etag })).status, 206, 'If-Range with the current tag')
    const stale = await get(url, { range: 'bytes=0-9', 'if-range': '"something-else"' })
    t.equal(stale.status, 200, 'If-Range with another tag: the whole title')
    t.equal(stale.body.length, SIZE)
    t.equal((await get(url, { range: 'bytes=0-9', 'if-range': lastModified })).status, 206, 'If-Range with the exact date')
    const nm = await get(url, { 'if-none-match': etag })
    t.equal(nm.status, 304)
    t.equal(nm.body.length, 0)
    t.equal(nm.headers.etag, etag)
    t.equal((await get(url, { 'if-modified-since': lastModified })).status, 304)
    t.equal((await get(url, { 'if-match': '"nope"' })).status, 412)
  })

  await t.test('HEAD: the headers of a GET, no body', async t => {
    const r = await get(url, { range: 'bytes=10-19' }, 'HEAD')
    t.equal(r.status, 206)
    t.equal(r.headers['content-length'], '10')
    t.equal(r.body.length, 0)
  })

  await t.test('an empty title is a 200 with no body', async t => {
    const r = await get(`${edge.url}/v1/content/empty-1`)
    t.equal(r.status, 200)
    t.equal(r.headers['content-length'], '0')
  })

  await t.test('CORS: browser players can read ranges cross-origin; preflight answered', async t => {
    const r = await get(url, { range: 'bytes=0-9', origin: 'https://player.example' })
    t.equal(r.headers['access-control-allow-origin'], '*')
    const exposed = String(r.headers['access-control-expose-headers']).toLowerCase()
    for (const h of ['content-range', 'content-length', 'etag', 'accept-ranges']) t.ok(exposed.includes(h), `exposes ${h}`)
    const pre = await get(url, { origin: 'https://player.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' }, 'OPTIONS')
    t.equal(pre.status, 204)
    t.match(String(pre.headers['access-control-allow-methods']), /GET/)
    t.match(String(pre.headers['access-control-allow-headers']), /Range/)
    const missing = await get(`${edge.url}/v1/content/no-such-title`, { origin: 'https://player.example' })
    t.equal(missing.status, 404)
    t.equal(missing.headers['access-control-allow-origin'], '*', 'errors are readable by the player too')
  })

  await t.test('bad requests are named', async t => {
    const missing = await get(`${edge.url}/v1/content/no-such-title`)
    t.equal(missing.status, 404)
    t.equal(JSON.parse(missing.body.toString()).error.code, 'CDN_ERR_NOT_FOUND')
    const bad = await get(`${edge.url}/v1/content/..%2fetc`)
    t.equal(bad.status, 400)
    t.equal(JSON.parse(bad.body.toString()).error.code, 'CDN_ERR_INVALID_ID')
    t.equal((await get(url, {}, 'POST')).status, 405)
  })

  t.ok(await metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'multirange' }) >= 1)
})

function parseMultipart(body: Buffer, boundary: string): { range: string; body: Buffer }[] {
  const out: { range: string; body: Buffer }[] = []
  const delim = Buffer.from(`--${boundary}`)
  let pos = body.indexOf(delim)
  for (;;) {
    const headEnd = body.indexOf('\r\n\r\n', pos)
    if (body.subarray(pos + delim.length, pos + delim.length + 2).toString() === '--' || headEnd < 0) break
    const head = body.subarray(pos, headEnd).toString()
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), headEnd)
    out.push({ range: /content-range: (.*)/i.exec(head)![1]!.trim(), body: body.subarray(headEnd + 4, next) })
    pos = next + 2
  }
  return out
}
