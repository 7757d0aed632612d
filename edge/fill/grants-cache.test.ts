import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { newRegistry, edgeFillPathMetrics } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { GrantsCache } from './grants-cache.js'
import type { ChunkRef } from '../title.js'

/** A router that answers fill requests as `answer` says, counting them. */
async function router(t: { teardown(f: () => unknown): void }, answer: (url: string) => { status: number; body: unknown }) {
  const r = { url: '', asked: [] as string[] }
  const server = http.createServer((req, res) => {
    r.asked.push(req.url ?? '')
    const a = answer(req.url ?? '')
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body))
  })
  await new Promise<void>(ok => server.listen(0, '127.0.0.1', ok))
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(() => new Promise<void>(ok => { server.closeAllConnections(); server.close(() => ok()) }))
  return r
}

const ref = (index: number): ChunkRef => ({ key: `k/${index}`, contentId: 'film', index, sha256: `sha${index}`, size: 10 })
const grantAnswer = (url: string, expiresAt: number) => {
  const i = Number(/fill\/(\d+)/.exec(url)![1])
  return { status: 200, body: { sid: 'film.v', expiresAt, chunks: [i, i + 1].map(index => ({ index, size: 10, sha256: `sha${index}`,
    sources: [{ shardId: 'shard-1', url: 'http://127.0.0.1:1', grant: `g${index}` }] })) } }
}

function cache(url: string, clock: () => number) {
  const metrics = edgeFillPathMetrics(newRegistry('edge', false))
  const c = new GrantsCache({ baseUrl: url, token: 'tok', edgeId: 'e1', count: 2, relayHoldMs: 30_000, headersTimeoutMs: 2000, connections: 4, clock }, metrics, quietLogger('edge'))
  return c
}

t.test('one answer covers the readahead; grants are kept until shortly before they expire, then asked again', async t => {
  let now = 1_000_000
  const r = await router(t, url => grantAnswer(url, now + 60_000))
  const c = cache(r.url, () => now)
  t.teardown(() => c.close())
  const sig = new AbortController().signal
  const [a, b] = await Promise.all([c.get(ref(0), sig), c.get(ref(0), sig)])
  t.equal(a?.sources[0]?.grant, 'g0')
  t.equal(b, a, 'concurrent lookups share one request')
  t.equal((await c.get(ref(1), sig))?.sources[0]?.grant, 'g1', 'the next chunk came with it')
  t.same(r.asked, ['/v1/content/film/fill/0?count=2'])
  now += 49_000
  await c.get(ref(0), sig)
  t.equal(r.asked.length, 1, 'still fresh 11 s before expiry')
  now += 2000
  await c.get(ref(0), sig)
  t.equal(r.asked.length, 2, 'asked again 9 s before expiry')
})

t.test('grants off on the router: the relay, and no question for relayHoldMs; throttled: the relay for that chunk only', async t => {
  let now = 1_000_000
  let mode = 'off'
  const r = await router(t, url => mode === 'off' ? { status: 503, body: { error: { code: 'CDN_ERR_FILL_GRANTS_DISABLED', message: 'off' } } }
    : mode === 'busy' ? { status: 429, body: { error: { code: 'CDN_ERR_FILL_THROTTLED', message: 'slow down' } } } : grantAnswer(url, now + 60_000))
  const c = cache(r.url, () => now)
  t.teardown(() => c.close())
  const sig = new AbortController().signal
  t.equal(await c.get(ref(0), sig), undefined)
  t.equal(await c.get(ref(5), sig), undefined)
  t.equal(r.asked.length, 1, 'held off')
  now += 30_001
  mode = 'busy'
  t.equal(await c.get(ref(0), sig), undefined)
  t.equal(await c.get(ref(2), sig), undefined)
  t.equal(r.asked.length, 3, 'a 429 holds nothing off')
  mode = 'ok'
  t.ok(await c.get(ref(0), sig))
})

t.test('early: a lookup started before the manifest is in serves the fill that asks next; one in hand or in flight is not asked again; a wrong guess is not an error', async t => {
  const now = 1_000_000
  const r = await router(t, url => /fill\/9\?/.test(url) ? { status: 404, body: { error: { code: 'CDN_ERR_NOT_FOUND', message: 'chunk 9 of film (it has 3)' } } }
    : grantAnswer(url, now + 60_000))
  const registry = newRegistry('edge', false)
  const metrics = edgeFillPathMetrics(registry)
  const c = new GrantsCache({ baseUrl: r.url, token: 'tok', edgeId: 'e1', count: 2, relayHoldMs: 30_000, headersTimeoutMs: 2000, connections: 4, clock: () => now },
    metrics, quietLogger('edge'))
  t.teardown(() => c.close())
  const sig = new AbortController().signal
  c.early('film', undefined, 0)
  c.early('film', undefined, 0)
  t.equal((await c.get(ref(0), sig))?.sources[0]?.grant, 'g0', 'the fill got the early answer')
  t.same(r.asked, ['/v1/content/film/fill/0?count=2'], 'one question for both')
  c.early('film', undefined, 1)
  t.equal(r.asked.length, 1, 'chunk 1 came with chunk 0: nothing asked')
  c.early('film', undefined, 9)
  t.equal(await c.get(ref(9), sig), undefined, 'a fill that joined a wrong guess goes by the relay')
  t.equal(r.asked.length, 2)
  const errors = (await metrics.grants.get()).values.filter(v => v.labels.result === 'error').reduce((a, v) => a + v.value, 0)
  t.equal(errors, 0, 'a 404 for a guess is not counted as an error')
  t.ok(await c.get(ref(2), sig), 'later lookups are not held off')
})

t.test('withManifest: the manifest and the grants in one answer; a router that answers without one is not asked for it for ten minutes; none while grants are off', async t => {
  let now = 1_000_000
  let mode = 'new'
  const r = await router(t, url => {
    if (mode === 'off') return { status: 503, body: { error: { code: 'CDN_ERR_FILL_GRANTS_DISABLED', message: 'off' } } }
    const a = grantAnswer(url, now + 60_000)
    return mode === 'new' && url.includes('manifest=1') ? { status: 200, body: { ...a.body, manifest: { contentId: 'film', v: 1 } } } : a
  })
  const c = cache(r.url, () => now)
  t.teardown(() => c.close())
  const sig = new AbortController().signal
  const p = c.withManifest('film', undefined, 0)
  const [m, g] = await Promise.all([p, c.get(ref(0), sig)])
  t.same(m, { contentId: 'film', v: 1 }, 'the manifest, as sent')
  t.equal(g?.sources[0]?.grant, 'g0', 'a fill that asked meanwhile waited for the same answer')
  t.same(r.asked, ['/v1/content/film/fill/0?count=2&manifest=1'], 'one question')
  mode = 'old'
  t.equal(await c.withManifest('film', undefined, 4), undefined, 'an older router: grants, no manifest')
  t.equal(c.withManifest('film', undefined, 6), undefined, 'then not asked again: the caller fetches the manifest its own way')
  t.equal(r.asked.length, 2)
  now += 9 * 60_000
  t.equal(c.withManifest('film', undefined, 6), undefined, 'nine minutes on: still not')
  mode = 'new'
  now += 61_000
  t.same(await c.withManifest('film', undefined, 6), { contentId: 'film', v: 1 }, 'ten minutes on: asked again (the router may be upgraded meanwhile)')
  t.equal(r.asked.length, 3)
  const off = cache(r.url, () => now)
  t.teardown(() => off.close())
  mode = 'off'
  t.equal(await off.withManifest('film', undefined, 0), undefined, 'grants off: no manifest either')
  t.equal(off.withManifest('film', undefined, 1), undefined, 'and none asked while held off')
  t.equal(r.asked.length, 4)
})
