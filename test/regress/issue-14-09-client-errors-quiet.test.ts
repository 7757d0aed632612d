import t, { type Test } from 'tap'
import net from 'node:net'
import { statfsSync } from 'node:fs'
import { createLogger } from '../../lib/logger.js'
import { startOrigin } from '../../origin/main.js'
import { TOKEN } from '../system/harness.js'
import { freshDir, metric, until } from '../helpers/edge.js'
import { logSink, originConfig } from '../helpers/origin.js'
import { raw } from '../helpers/hostile.js'
import { startSurfaces, type LiveSurface } from '../helpers/surfaces.js'

/**
 * Issue 14, item 9: requests in HTTP/2.0 or HTTP/0.9 were answered 505 and
 * logged at level 50 with a stack; so were clients that left mid-answer or
 * mid-upload ("client closed the connection", "aborted"), a serve thread's
 * relay cut by its client, and a 507 that uploads in flight caused. None is
 * for an operator to act on: each is logged at info or warn without a stack,
 * and counted in reelcdn_http_client_errors_total{reason}. Level 50 stays for
 * what an operator must act on (origin/logs.test.ts: a corrupt chunk).
 */
const MiB = 1024 * 1024

/** Connects, sends `data`, and destroys the connection after `afterBytes` of the answer (or, with -1, `ms` after sending). */
function cut(base: string, data: string | Buffer, afterBytes: number, ms = 0): Promise<void> {
  const { hostname, port } = new URL(base)
  return new Promise(resolve => {
    const s = net.connect(Number(port), hostname, () => {
      s.write(data)
      if (afterBytes < 0) setTimeout(() => s.destroy(), ms)
    })
    let got = 0
    s.on('data', d => { got += d.length; if (afterBytes >= 0 && got > afterBytes) s.destroy() })
    s.on('close', () => resolve())
    s.on('error', () => {})
  })
}

function quiet(t: Test, s: { name: string; lines: Record<string, any>[] }, what: string): void {
  const loud = s.lines.filter(l => l.level >= 50)
  t.same(loud.map(l => `${l.service}: ${l.msg} ${l.err?.message ?? l.err ?? ''}`), [], `${s.name}, ${what}: nothing at level 50`)
  t.same(s.lines.filter(l => typeof l.err?.stack === 'string').map(l => l.msg), [], `${s.name}, ${what}: no stack`)
}

const clientErrors = (s: LiveSurface, reason: string) => metric(s.base, 'reelcdn_http_client_errors_total', { reason })

/** Polls `count` until it reaches `want` (a serve thread's counts come in batches) or 3 s pass; its last value. */
async function reaches(count: () => Promise<number>, want: number): Promise<number> {
  const end = Date.now() + 3000
  let n = await count()
  while (n < want && Date.now() < end) {
    await new Promise(r => setTimeout(r, 20))
    n = await count()
  }
  return n
}

t.test('client mistakes and aborts are logged quietly and counted on every service', async t => {
  const surfaces = await startSurfaces(t, { big: true })
  for (const s of surfaces) {
    for (const v of ['HTTP/2.0', 'HTTP/3.0']) {
      for (const r of await s.send(`GET ${s.good} ${v}\r\nhost: t\r\n\r\n`)) t.equal(r.status, 505, `${s.name}, ${v}: 505`)
    }
    for (const r of await s.send(`GET ${s.good}\r\n\r\n`)) t.equal(r.status, 505, `${s.name}, HTTP/0.9: 505`)
    for (const r of await s.send(`PROPFIND ${s.good} HTTP/1.1\r\nhost: t\r\n\r\n`)) t.equal(r.status, 501, `${s.name}, an unknown method: 501`)
    // cut after the first bytes of the answer, and before any
    for (let i = 0; i < (s.threads ? 4 : 2); i++) {
      await cut(s.base, `GET ${s.big} HTTP/1.1\r\nhost: t\r\n\r\n`, 1000)
      await cut(s.base, `GET ${s.big} HTTP/1.1\r\nhost: t\r\nrange: bytes=2000000-5000000\r\n\r\n`, -1, i)
    }
    await until(() => s.active() === 0, `${s.name}: every request done`)
    const versions = await reaches(() => clientErrors(s, 'http_version'), 3)
    quiet(t, s, 'versions, methods and aborts')
    t.ok(versions >= 3, `${s.name}: the wrong versions counted (${versions})`)
    t.ok(await clientErrors(s, 'unknown_method') >= 1, `${s.name}: the unknown method counted`)
    t.ok(await reaches(() => clientErrors(s, 'client_gone'), 1) >= 1, `${s.name}: the aborts counted`)
  }
  await t.test('uploads the client cuts, refused tokens and a 507 the uploads in flight caused are not errors either', t => uploads(t, surfaces))
})

async function uploads(t: Test, surfaces: LiveSurface[]): Promise<void> {
  const router = surfaces.find(s => s.name === 'router')!
  const shard = surfaces.find(s => s.name === 'shard')!
  await cut(router.base, `PUT /v1/content/cut HTTP/1.1\r\nhost: t\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${3 * MiB}\r\n\r\n${'x'.repeat(200_000)}`, -1, 100)
  await cut(router.base, `PUT /v1/content/nope HTTP/1.1\r\nhost: t\r\nauthorization: Bearer wrong\r\ncontent-length: ${3 * MiB}\r\n\r\n${'x'.repeat(200_000)}`, -1, 100)
  t.equal((await raw(router.base, 'POST /v1/edges/heartbeat HTTP/1.1\r\nhost: t\r\nauthorization: Bearer wrong\r\ncontent-length: 2\r\n\r\n{}')).status, 401)
  await cut(shard.base, `PUT /v1/chunks/cut/0 HTTP/1.1\r\nhost: t\r\ncontent-digest: sha-256=:${Buffer.alloc(32).toString('base64')}:\r\ncontent-length: ${MiB}\r\n\r\n${'x'.repeat(1000)}`, -1, 100)
  for (const s of [router, shard]) {
    await until(() => s.active() === 0, `${s.name}: every request done`)
    const gone = await reaches(() => clientErrors(s, 'client_gone'), 1)
    quiet(t, s, 'cut uploads and refused tokens')
    t.ok(gone >= 1, `${s.name}: the cut upload counted`)
  }
  t.ok(await clientErrors(router, 'unauthorized') >= 2, 'the refused tokens counted')

  // a shard whose free space above its reserve holds one more chunk: an upload in flight reserves a whole
  // chunk (no Content-Length), so a second upload is refused for the moment, 507, by no fault of the disk.
  // Chunks of 512 MiB: the free space other tests change meanwhile (tens of MiB) cannot make room for the second
  const sink = logSink()
  const dir = freshDir(t)
  const free = statfsSync(dir).bavail * statfsSync(dir).bsize
  const chunk = 512 * MiB
  const o = await startOrigin(originConfig(dir, { 'log.level': 'info', 'cluster.chunkSize': chunk, 'origin.reserveBytes': free - chunk - 28 * MiB }),
    { logger: createLogger('origin', 'info', sink) })
  t.teardown(() => o.close())
  const digest = `content-digest: sha-256=:${Buffer.alloc(32).toString('base64')}:\r\n`
  const held = net.connect(o.port, '127.0.0.1')
  held.on('error', () => {})
  held.write(`PUT /v1/chunks/held/0 HTTP/1.1\r\nhost: t\r\n${digest}transfer-encoding: chunked\r\n\r\n`)
  let refused = 0
  let head = ''
  await until(async () => {
    const r = await raw(o.url, `PUT /v1/chunks/second/0 HTTP/1.1\r\nhost: t\r\n${digest}content-length: ${chunk}\r\nconnection: close\r\n\r\n`)
    refused = r.status
    head = r.head
    return refused === 507
  }, 'a second upload refused while the first holds its reservation')
  t.equal(refused, 507, 'the second upload: 507')
  // what tells a router this 507 is the uploads' timing, not a full disk (router/errors.ts shardRefusal)
  t.match(head, /\r\nretry-after: 1\r\n/i, 'with a Retry-After')
  held.destroy()
  await until(() => o.server.http.active === 0, 'the held upload ended')
  quiet(t, { name: 'a shard near its reserve', lines: sink.lines }, 'a 507 caused by uploads in flight')
  t.ok(await metric(o.url, 'reelcdn_http_client_errors_total', { reason: 'no_space' }) >= 1, 'counted')
}
