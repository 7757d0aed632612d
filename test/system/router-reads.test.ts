import t from 'tap'
import { createHash } from 'node:crypto'
import { TestCluster, randomBody } from './harness.js'

/** Reads through the router: RFC 9110 semantics over chunked, replicated titles. */
const CS = 65536

t.test('byte-exact random ranges, including across chunk boundaries', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(10 * CS + 12345)
  t.equal((await c.ingest('movie-1', body, { meta: { title: 'Movie One' } })).status, 201)

  const full = await c.get('/v1/content/movie-1')
  t.equal(full.status, 200)
  t.ok(full.body.equals(body), 'whole title byte-exact')
  t.equal(full.headers['content-type'], 'video/mp4')
  t.equal(full.headers['accept-ranges'], 'bytes')
  t.equal(full.headers.etag, `"${createHash('sha256').update(body).digest('hex')}"`)
  t.ok(full.headers['last-modified'])

  // a fixed seed of boundary cases, then random ranges
  const ranges: [number, number][] = [[CS - 1, CS], [CS - 10, 3 * CS + 10], [0, 0], [body.length - 1, body.length - 1], [2 * CS, 3 * CS - 1]]
  for (let i = 0; i < 25; i++) {
    const a = Math.floor(Math.random() * body.length)
    const b = Math.min(body.length - 1, a + Math.floor(Math.random() * 3 * CS))
    ranges.push([a, b])
  }
  for (const [a, b] of ranges) {
    const r = await c.get('/v1/content/movie-1', { range: `bytes=${a}-${b}` })
    t.equal(r.status, 206)
    t.equal(r.headers['content-range'], `bytes ${a}-${b}/${body.length}`)
    if (!r.body.equals(body.subarray(a, b + 1))) t.fail(`range ${a}-${b} differs`)
  }
  const suffix = await c.get('/v1/content/movie-1', { range: 'bytes=-70000' })
  t.ok(suffix.body.equals(body.subarray(body.length - 70000)), 'suffix range across a boundary')

  const multi = await c.get('/v1/content/movie-1', { range: `bytes=0-9,${CS - 5}-${CS + 5}` })
  t.equal(multi.status, 206)
  t.match(multi.headers['content-type'], /^multipart\/byteranges; boundary=/)
  t.ok(multi.body.includes(body.subarray(CS - 5, CS + 6)), 'multipart part crossing a boundary')
})

t.test('HEAD, conditional requests and 416 follow RFC 9110', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(3 * CS)
  await c.ingest('movie-2', body)
  const head = await c.get('/v1/content/movie-2', {}, 'HEAD')
  t.equal(head.status, 200)
  t.equal(head.headers['content-length'], String(body.length))
  t.equal(head.body.length, 0)
  const etag = head.headers.etag as string
  t.equal((await c.get('/v1/content/movie-2', { 'if-none-match': etag })).status, 304)
  t.equal((await c.get('/v1/content/movie-2', { 'if-match': '"nope"' })).status, 412)
  t.equal((await c.get('/v1/content/movie-2', { 'if-modified-since': head.headers['last-modified'] as string })).status, 304)
  const r416 = await c.get('/v1/content/movie-2', { range: `bytes=${body.length}-` })
  t.equal(r416.status, 416)
  t.equal(r416.headers['content-range'], `bytes */${body.length}`)
  // If-Range with a stale tag: the whole representation
  const ifr = await c.get('/v1/content/movie-2', { range: 'bytes=0-9', 'if-range': '"stale"' })
  t.equal(ifr.status, 200)
  t.equal(ifr.body.length, body.length)
  t.equal((await c.get('/v1/content/nope')).status, 404)
  t.equal((await c.get('/v1/content/bad..id')).status, 400)
})

t.test('one whole chunk, with its digest, for edges to fill from', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBody(2 * CS + 100)
  await c.ingest('movie-3', body)
  const meta = await c.get('/v1/content/movie-3/meta')
  t.equal(meta.status, 200)
  const m = JSON.parse(meta.body.toString())
  t.equal(m.chunks.length, 3)
  t.equal(m.size, body.length)

  const last = await c.get('/v1/content/movie-3/chunks/2')
  t.equal(last.status, 200)
  t.ok(last.body.equals(body.subarray(2 * CS)))
  t.equal(last.headers.etag, `"${m.chunks[2]}"`)
  t.equal(last.headers['repr-digest'], `sha-256=:${Buffer.from(m.chunks[2], 'hex').toString('base64')}:`)
  const part = await c.get('/v1/content/movie-3/chunks/1', { range: 'bytes=100-199' })
  t.equal(part.status, 206)
  t.ok(part.body.equals(body.subarray(CS + 100, CS + 200)))
  t.equal((await c.get('/v1/content/movie-3/chunks/1', { 'if-none-match': `"${m.chunks[1]}"` })).status, 304)
  t.equal((await c.get('/v1/content/movie-3/chunks/3')).status, 404)
  t.equal((await c.get('/v1/content/movie-3/chunks/01')).status, 400)
})

t.test('an empty title is a title', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  t.equal((await c.ingest('empty', Buffer.alloc(0))).status, 201)
  const r = await c.get('/v1/content/empty')
  t.equal(r.status, 200)
  t.equal(r.body.length, 0)
  t.equal((await c.get('/v1/content/empty', { range: 'bytes=0-' })).status, 416)
})

t.test('the catalog lists, filters and pages', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const titles = [
    { id: 'a-drama', title: 'Été indien', categories: ['drama'] },
    { id: 'b-comedy', title: 'Laughing', categories: ['comedy'] },
    { id: 'c-drama', title: 'Rain', categories: ['Drama', 'noir'] },
    { id: 'd-doc', title: 'Whales', categories: ['documentary'] },
  ]
  for (const x of titles) {
    const meta = JSON.stringify({ title: x.title, categories: x.categories, rights: { regions: ['FR'], availableFrom: '2025-01-01T00:00:00Z' } })
      .replace(/[\u007f-\uffff]/g, ch => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0'))
    t.equal((await c.ingest(x.id, randomBody(100), { meta: JSON.parse(meta) })).status, 201)
  }
  const list = async (q: string) => JSON.parse((await c.get(`/v1/content?${q}`)).body.toString())
  t.same((await list('category=drama')).items.map((i: any) => i.contentId), ['a-drama', 'c-drama'])
  t.same((await list('q=ETE')).items.map((i: any) => i.contentId), ['a-drama'], 'case and accents do not matter')
  const one = (await list('q=indien')).items
  t.same(one.map((i: any) => i.contentId), ['a-drama'])
  t.equal(one[0].title, 'Été indien')
  t.same(one[0].rights, { regions: ['FR'], availableFrom: Date.parse('2025-01-01T00:00:00Z'), availableUntil: null })
  const p1 = await list('limit=3')
  t.equal(p1.items.length, 3)
  t.ok(p1.next)
  const p2 = await list(`limit=3&cursor=${p1.next}`)
  t.same(p2.items.map((i: any) => i.contentId), ['d-doc'])
  t.equal(p2.next, null)
  t.equal((await c.get('/v1/content?limit=0')).status, 400)
  t.equal((await c.get('/v1/content?cursor=%%%')).status, 400)

  // a second router, which ingested nothing, finds the same catalog on the shards
  await c.startRouter()
  t.same((await list('category=drama')).items.map((i: any) => i.contentId), ['a-drama', 'c-drama'])
})
