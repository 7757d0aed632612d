import t, { type Test } from 'tap'
import { request } from 'undici'
import { createLogger } from '../lib/logger.js'
import { startOrigin } from './main.js'
import { flipByte, get, logSink, originConfig, putChunk, randomChunk, until } from '../test/helpers/origin.js'

/**
 * What a shard writes to its log, read from a real server's pino output: one
 * JSON line per request with its request id (the client's x-request-id when
 * it sends a usable one), and a corrupt block named loudly.
 */
const MiB = 1024 * 1024

async function logged(t: Test, overrides: Record<string, unknown>) {
  const sink = logSink()
  const o = await startOrigin(originConfig(t.testdir(), { 'origin.memoryCacheBytes': 0, ...overrides }),
    { logger: createLogger('origin', 'info', sink) })
  t.teardown(() => o.close())
  /** lines about request `id`, once no request is in flight (a request's line is written as it stops counting) */
  const linesOf = async (id: string) => {
    await until(() => o.server.http.active === 0, 'every request answered')
    return sink.lines.filter(l => l.reqId === id)
  }
  return { o, sink, linesOf }
}

t.test('with log.requests on, each request is one JSON line carrying its request id', async t => {
  const { o, linesOf } = await logged(t, { 'log.requests': true })
  const chunk = randomChunk(100_000)

  const put = await putChunk(o.url, 'movie', 0, chunk)
  t.equal(put.status, 201)
  const putId = put.headers['x-request-id'] as string
  t.match(putId, /^[0-9a-f]{8}-[0-9a-z]+$/, 'a request without an id gets one')

  const mine = await request(`${o.url}/v1/chunks/movie/0`, { headers: { 'x-request-id': 'player-7.abc:42' } })
  await mine.body.arrayBuffer()
  t.equal(mine.headers['x-request-id'], 'player-7.abc:42', "the client's id is echoed")

  const bad = await request(`${o.url}/v1/chunks/movie/0`, { headers: { 'x-request-id': 'no spaces allowed' } })
  await bad.body.arrayBuffer()
  const badId = bad.headers['x-request-id'] as string
  t.not(badId, 'no spaces allowed', 'an unusable client id is replaced')

  const missing = await get(`${o.url}/v1/chunks/nothing/0`)
  t.equal(missing.status, 404)

  const want: [string, string, string, number][] = [
    [putId, 'PUT', '/v1/chunks/movie/0', 201],
    ['player-7.abc:42', 'GET', '/v1/chunks/movie/0', 200],
    [badId, 'GET', '/v1/chunks/movie/0', 200],
    [missing.headers['x-request-id'] as string, 'GET', '/v1/chunks/nothing/0', 404],
  ]
  for (const [id, method, url, status] of want) {
    const lines = await linesOf(id)
    t.equal(lines.length, 1, `exactly one line for ${method} ${url}`)
    t.match(lines[0], { msg: 'request', service: 'origin', reqId: id, method, url, status, finished: true, ms: Number })
    t.equal(lines[0]!.level, 30, 'at info level')
  }
})

t.test('with log.requests off, a good request writes nothing and a failed one a single line', async t => {
  const { o, sink, linesOf } = await logged(t, { 'log.requests': false })
  const chunk = randomChunk(MiB)
  const put = await putChunk(o.url, 'rot', 0, chunk)
  t.equal(put.status, 201)
  t.same(await linesOf(put.headers['x-request-id'] as string), [], 'no line for a 201')

  // a read that starts in a corrupt block: a 500 before any header
  flipByte(o.store.path('rot', 0, put.json.sha256), 500_000)
  const r = await get(`${o.url}/v1/chunks/rot/0`, { range: 'bytes=499000-501000', 'x-request-id': 'read-1' })
  t.equal(r.status, 500)
  const lines = await linesOf('read-1')
  t.equal(lines.length, 1, 'one line for the failed request, not one for the error and one for the request')
  t.match(lines[0], { level: 50, msg: 'request', status: 500, code: 'CDN_ERR_CORRUPT', err: { message: /rot\/0/ } })

  const corrupt = sink.lines.filter(l => l.msg?.startsWith('corrupt chunk'))
  t.equal(corrupt.length, 1, 'the corruption itself is logged once')
  t.match(corrupt[0], { level: 50, chunk: 'rot/0', foundBy: 'read' }, 'at error level, naming the chunk')
})

t.test('a read cut short by a corrupt block logs an error line naming the chunk', async t => {
  const { o, sink, linesOf } = await logged(t, { 'log.requests': false })
  const chunk = randomChunk(4 * MiB)
  const put = await putChunk(o.url, 'cut', 3, chunk)
  flipByte(o.store.path('cut', 3, put.json.sha256), 3 * MiB + 5)

  const res = await request(`${o.url}/v1/chunks/cut/3`, { headers: { 'x-request-id': 'whole-1' } })
  t.equal(res.statusCode, 200, 'headers went out before the bad block was reached')
  await t.rejects(res.body.arrayBuffer(), 'the body is cut')

  await until(() => sink.lines.some(l => l.chunk === 'cut/3'), 'the corrupt chunk line')
  const corrupt = sink.lines.filter(l => l.chunk === 'cut/3')
  t.equal(corrupt.length, 1)
  t.match(corrupt[0], { level: 50, foundBy: 'read', msg: /corrupt chunk/ })
  const lines = await linesOf('whole-1')
  t.equal(lines.length, 1, 'and the request has its one line, at error level though its status was 200')
  t.match(lines[0], { level: 50, status: 200, finished: false, code: 'CDN_ERR_CORRUPT' })
})
