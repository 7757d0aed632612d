import t, { type Test } from 'tap'
import http from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { loadConfig } from '../lib/config/config.js'
import { quietLogger } from '../lib/logger.js'
import { startOrigin, type RunningOrigin } from './main.js'

/**
 * The shard's read path, with and without its RAM cache: every byte sent is a
 * stored byte, whatever the range, however many clients read at once, and
 * whether or not some of them hang up mid-body (read buffers are reused once a
 * write completes, so a mix-up would show here as wrong bytes). A byte flipped
 * on disk is never sent.
 */
const SIZE = 3 * 1024 * 1024 - 1000 // several segments, a short last block
const READ_SIZE = 256 * 1024

interface Got { status: number; headers: http.IncomingHttpHeaders; body: Buffer; complete: boolean }

function get(url: string, headers: Record<string, string> = {}, opts: { abortAfter?: number; stallMs?: number } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, res => {
      const parts: Buffer[] = []
      let n = 0
      const done = (complete: boolean) => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), complete })
      res.on('data', (c: Buffer) => {
        parts.push(c)
        n += c.length
        if (opts.abortAfter !== undefined && n >= opts.abortAfter) { req.destroy(); done(false) }
        else if (opts.stallMs && parts.length === 1) { res.pause(); setTimeout(() => res.resume(), opts.stallMs) }
      })
      res.on('end', () => done(res.complete))
      res.on('error', () => done(false))
      res.on('aborted', () => done(false))
    })
    req.on('error', err => (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false }) : reject(err))
  })
}

function put(url: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', agent: false, headers: {
      'content-digest': `sha-256=:${createHash('sha256').update(body).digest('base64')}:`, 'content-length': body.length } }, res => {
      res.resume()
      res.on('end', () => resolve(res.statusCode!))
    })
    req.on('error', reject)
    req.end(body)
  })
}

function del(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.request(url, { method: 'DELETE', agent: false }, res => { res.resume(); res.on('end', () => resolve(res.statusCode!)) })
      .on('error', reject).end()
  })
}

async function shard(t: Test, memoryCacheBytes: number): Promise<RunningOrigin> {
  const config = loadConfig({ env: {}, overrides: {
    'origin.dataDir': t.testdir(), 'origin.port': 0, 'origin.host': '127.0.0.1', 'origin.reserveBytes': 0,
    'origin.memoryCacheBytes': memoryCacheBytes, 'origin.readSize': READ_SIZE, 'origin.scrubRateMBps': 0, 'origin.insecureOpenWrites': true,
    'cluster.chunkSize': 16 * 1024 * 1024,
  } })
  const o = await startOrigin(config, { logger: quietLogger('origin') })
  t.teardown(() => o.close())
  return o
}

/** [start, end] pairs: edges, block and segment boundaries, and random spans. */
function ranges(count: number): [number, number][] {
  const out: [number, number][] = [[0, 0], [SIZE - 1, SIZE - 1], [0, SIZE - 1], [65535, 65536], [READ_SIZE - 1, READ_SIZE],
    [READ_SIZE, 2 * READ_SIZE - 1], [SIZE - 70000, SIZE - 1], [100, 3 * READ_SIZE + 17]]
  while (out.length < count) {
    const s = Math.floor(Math.random() * SIZE)
    const len = 1 + Math.floor(Math.random() * Math.min(SIZE - s, 1.5 * 1024 * 1024))
    out.push([s, s + len - 1])
  }
  return out
}

for (const [name, cache] of [['RAM cache', 8 * 1024 * 1024], ['no RAM cache', 0]] as const) {
  t.test(`${name}: every range sent equals the stored bytes`, async t => {
    const o = await shard(t, cache)
    const data = randomBytes(SIZE)
    t.equal(await put(`${o.url}/v1/chunks/m/0`, data), 201)
    const list = ranges(120)
    const bad: string[] = []
    // eight clients at a time, so reads of one segment overlap
    for (let i = 0; i < list.length; i += 8) {
      await Promise.all(list.slice(i, i + 8).map(async ([s, e]) => {
        const r = await get(`${o.url}/v1/chunks/m/0`, { range: `bytes=${s}-${e}` })
        if (r.status !== 206 || r.headers['content-range'] !== `bytes ${s}-${e}/${SIZE}` || !r.body.equals(data.subarray(s, e + 1)))
          bad.push(`${s}-${e}: ${r.status} ${r.body.length} bytes`)
      }))
    }
    t.same(bad, [], 'no range differs from the stored bytes')
    const whole = await get(`${o.url}/v1/chunks/m/0`)
    t.equal(whole.status, 200)
    t.ok(whole.body.equals(data), 'the whole chunk is byte-exact')
  })

  t.test(`${name}: clients hanging up or stalling mid-body do not change what the others receive`, async t => {
    const o = await shard(t, cache)
    // bigger than the socket buffers (4 MiB send + the receiver's), so a stalled reader's bytes queue in the server
    const BIG = 12 * 1024 * 1024
    const data = [randomBytes(BIG), randomBytes(BIG)]
    t.equal(await put(`${o.url}/v1/chunks/m/0`, data[0]!), 201)
    t.equal(await put(`${o.url}/v1/chunks/m/1`, data[1]!), 201)
    const bad: string[] = []
    for (let round = 0; round < 2; round++) {
      await Promise.all(Array.from({ length: 18 }, async (_, i) => {
        const idx = i % 2
        const aborting = i % 3 === 0
        const stalling = i % 3 === 1
        const s = stalling ? 0 : (i * 537_123 + round * 1_000_003) % (BIG - 1)
        const e = stalling ? BIG - 1 : Math.min(BIG - 1, s + 700_000 + i * 10_000)
        const r = await get(`${o.url}/v1/chunks/m/${idx}`, { range: `bytes=${s}-${e}` }, aborting ? { abortAfter: 1 } : { stallMs: stalling ? 150 : 0 })
        const want = data[idx]!.subarray(s, e + 1)
        // an aborted read may stop anywhere, but what it got must be a prefix of the right bytes
        if (aborting ? !want.subarray(0, r.body.length).equals(r.body) : (!r.complete || !r.body.equals(want)))
          bad.push(`chunk ${idx} ${s}-${e}${aborting ? ' (aborted)' : ''}: ${r.status}, ${r.body.length} bytes`)
      }))
    }
    t.same(bad, [], 'every byte received is the stored byte at its offset')
  })

  t.test(`${name}: a byte flipped on disk is never sent`, async t => {
    const o = await shard(t, cache)
    const data = randomBytes(SIZE)
    t.equal(await put(`${o.url}/v1/chunks/m/0`, data), 201)
    const row = o.index.get('m', 0)!
    // read it first, so the shard holds the file open when its bytes rot underneath
    t.equal((await get(`${o.url}/v1/chunks/m/0`, { range: 'bytes=0-99' })).status, 206)
    const at = 5 * 65536 + 321 // in block 5, in the second 256 KiB segment
    const fh = await open(o.store.path('m', 0, row.sha256), 'r+')
    await fh.write(Buffer.from([data[at]! ^ 0xff]), 0, 1, at)
    await fh.close()
    const r = await get(`${o.url}/v1/chunks/m/0`, { range: `bytes=1000-${at + 100_000}` })
    t.notOk(r.complete && r.status === 206, 'the response touching the bad block is not complete')
    t.ok(r.body.length <= at - 1000, 'it stops before the flipped byte')
    t.ok(data.subarray(1000, 1000 + r.body.length).equals(r.body), 'what was sent before it is right')
    const again = await get(`${o.url}/v1/chunks/m/0`, { range: 'bytes=0-10' })
    t.equal(again.status, 500, 'the chunk is then refused')
    t.match(again.body.toString(), /CDN_ERR_CORRUPT/)
    t.equal(o.index.get('m', 0)!.state, 'corrupt', 'and marked corrupt in the index')
  })

  t.test(`${name}: a repaired chunk is read from its new file`, async t => {
    const o = await shard(t, cache)
    const data = randomBytes(SIZE)
    t.equal(await put(`${o.url}/v1/chunks/m/0`, data), 201)
    t.equal((await get(`${o.url}/v1/chunks/m/0`, { range: 'bytes=0-99' })).status, 206)
    const row = o.index.get('m', 0)!
    const fh = await open(o.store.path('m', 0, row.sha256), 'r+')
    // in the last segment, which no read has cached yet
    const at = SIZE - 500
    await fh.write(Buffer.from([data[at]! ^ 0xff]), 0, 1, at)
    await fh.close()
    const rotten = await get(`${o.url}/v1/chunks/m/0`, { range: `bytes=${at - 10}-${at + 10}` })
    t.notOk(rotten.complete && rotten.status === 206, 'the rotten block is refused (a 500 before any byte, or a cut body)')
    t.equal(o.index.get('m', 0)!.state, 'corrupt')
    // repair: the same digest PUT again replaces the file (renamed over the old path)
    t.equal(await put(`${o.url}/v1/chunks/m/0`, data), 201)
    const r = await get(`${o.url}/v1/chunks/m/0`, { range: `bytes=${SIZE - 100_000}-` })
    t.equal(r.status, 206)
    t.ok(r.body.equals(data.subarray(SIZE - 100_000)), 'the repaired bytes are served, not the old file\'s')
  })

  t.test(`${name}: a deleted chunk stored again with other bytes serves the new bytes`, async t => {
    const o = await shard(t, cache)
    const a = randomBytes(SIZE)
    const b = randomBytes(SIZE)
    t.equal(await put(`${o.url}/v1/chunks/m/0`, a), 201)
    t.ok((await get(`${o.url}/v1/chunks/m/0`, { range: 'bytes=0-99' })).body.equals(a.subarray(0, 100)))
    t.equal(await del(`${o.url}/v1/chunks/m/0`), 204)
    t.equal((await get(`${o.url}/v1/chunks/m/0`, { range: 'bytes=0-99' })).status, 404)
    t.equal(await put(`${o.url}/v1/chunks/m/0`, b), 201)
    t.ok((await get(`${o.url}/v1/chunks/m/0`, { range: 'bytes=0-99' })).body.equals(b.subarray(0, 100)))
  })
}
