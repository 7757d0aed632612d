import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import net from 'node:net'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { request } from 'undici'
import { digestHeader } from '../../lib/integrity/digest.js'
import { HttpService } from '../../lib/http/http.js'
import { loadConfig } from '../../lib/config/config.js'
import { createLogger } from '../../lib/logger.js'
import { Registry } from 'prom-client'
import { sha256Hex } from '../../router/cluster/keys.js'
import { TestCluster, TOKEN } from '../system/harness.js'
import { freshDir, metric, until } from '../helpers/edge.js'
import { logSink, randomChunk } from '../helpers/origin.js'
import { CLI } from '../helpers/spawn.js'

/**
 * Issue 14, item 9, the other way round: a client that leaves is not a server
 * fault, but a server fault is not a client that left. HttpService took an
 * unclassified failure for the client's doing when the request had been
 * destroyed before its body ended; a handler that reads the body with
 * `for await` destroys the request itself when it throws, so a shard whose
 * disk failed mid-upload (EIO, EROFS, EFBIG: only ENOSPC was translated)
 * answered nothing, counted client_gone and logged nothing. Here: the shard is
 * started under `ulimit -f` (RLIMIT_FSIZE, 2 MiB: writes past it fail EFBIG),
 * which needs no root and no special file system.
 */
const MiB = 1024 * 1024

interface Shard { url: string; lines: Record<string, any>[] }

/**
 * `reelcdn origin` in a bash whose file size limit is `limitKiB`: every write past it fails EFBIG. Node ignores
 * SIGXFSZ; tap's process-info hook (NODE_OPTIONS) would re-raise it and kill the shard, so the shard runs without it.
 */
function limitedShard(t: Test, limitKiB: number, dir: string): Promise<Shard> {
  const child = spawn('bash', ['-c', `ulimit -f ${limitKiB} && unset NODE_OPTIONS && exec "$@"`, 'bash', process.execPath, CLI, 'origin', '--port', '0', '--data-dir', dir,
    '--reserve', '0', '--chunk-size', String(8 * MiB), '--insecure-open-writes', '--log-level', 'info'],
  { env: { ...process.env, NODE_OPTIONS: '', REELCDN_SHARD_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr!.on('data', d => { stderr += d })
  const lines: Record<string, any>[] = []
  return new Promise((resolve, reject) => {
    child.once('exit', code => reject(new Error(`the shard exited with ${code}: ${stderr}`)))
    createInterface({ input: child.stdout! }).on('line', l => {
      try {
        const j = JSON.parse(l) as Record<string, any>
        lines.push(j)
        if (j.msg === 'origin shard ready') resolve({ url: j.url as string, lines })
      } catch { /* not JSON */ }
    })
  })
}

async function put(url: string, body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  try {
    const res = await request(url, { method: 'PUT', body, headers: { 'content-digest': digestHeader(sha256Hex(body)), ...headers } })
    const text = await res.body.text()
    return { status: res.statusCode, json: text ? JSON.parse(text) : undefined }
  } catch (err) {
    return { status: 0, json: { transport: (err as Error).message } }
  }
}

t.test('a disk fault mid-upload is a 500 the uploader reads, logged at level 50, not a client gone', async t => {
  const dir = freshDir(t)
  const shard = await limitedShard(t, 2048, dir)
  const r = await put(`${shard.url}/v1/chunks/too-big/0`, randomChunk(4 * MiB))
  t.equal(r.status, 500, `the uploader is answered 500 (got ${r.status} ${JSON.stringify(r.json)})`)
  t.equal(r.json?.error?.code, 'CDN_ERR_STORAGE', 'as a storage error')
  t.match(r.json?.error?.message, /too large/, 'naming the errno\'s meaning')
  await until(() => shard.lines.some(l => l.msg === 'request'), 'the request logged')
  const loud = shard.lines.filter(l => l.level >= 50)
  t.ok(loud.some(l => l.code === 'CDN_ERR_STORAGE'), `a level-50 line names the storage fault (${loud.map(l => l.msg).join('; ')})`)
  t.equal(await metric(shard.url, 'reelcdn_http_client_errors_total', { reason: 'client_gone' }), 0, 'not counted as a client gone')
  t.same(readdirSync(join(dir, 'tmp')), [], 'no temp file left')
  const small = await put(`${shard.url}/v1/chunks/small/0`, randomChunk(MiB))
  t.equal(small.status, 201, 'the shard still stores what fits')
})

t.test('a router whose shard fails so mid-ingest passes the storage fault on, not a client gone', async t => {
  // outside the test's directory: the cluster's t.testdir() would empty it under the running shard
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-test-shard-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const shard = await limitedShard(t, 2048, dir)
  const c = await TestCluster.start(t, { shards: 0, copies: 1, chunkSize: 4 * MiB,
    overrides: { 'cluster.shards': [{ id: 'shard-1', url: shard.url, weight: 1 }] } })
  const r = await put(`${c.url}/v1/content/too-big`, randomChunk(24 * MiB), { authorization: `Bearer ${TOKEN}`, 'content-type': 'video/mp4' })
  t.ok(r.status >= 500 && r.status < 600, `the uploader is answered a 5xx (got ${r.status} ${JSON.stringify(r.json)})`)
  t.match(r.json?.error?.message, /500 CDN_ERR_STORAGE/, 'naming the shard\'s storage fault')
})

t.test('a shard that fails a chunk mid-upload lingers: the uploader sends the rest of its body and reads the 500, with no reset', async t => {
  // stop 35: the router's ingest got EPIPE, not the shard's 500, in one clean-clone run of the test above. The
  // for-await that read the body destroyed the request when the write failed; the request then had no socket, so
  // the lingering close (lib/http/http.ts) found none, and nothing read the rest of the body: the shard's close was
  // a reset that can beat the 500 to the uploader. The shard now reads the body without destroying the request on
  // a throw (origin/server.ts). An uploader still sending must read the answer and the close, not EPIPE.
  const shard = await limitedShard(t, 2048, freshDir(t))
  const u = new URL(shard.url)
  // half-open, as an uploader that goes on sending its body after the answer came (the router's ingest, undici)
  const sock = net.connect({ port: Number(u.port), host: u.hostname, allowHalfOpen: true })
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  const body = randomChunk(8 * MiB)
  let answer = ''
  let off = 3 * MiB
  // the rest of the body as soon as the answer is in: read and dropped by a lingering shard, a reset (EPIPE) from one that closed
  const rest = () => {
    while (off < body.length) {
      const ok = sock.write(body.subarray(off, off + MiB))
      off += MiB
      if (!ok) return void sock.once('drain', rest)
    }
    sock.end()
  }
  sock.on('data', d => {
    const had = answer.includes('\r\n\r\n')
    answer += String(d)
    if (!had && answer.includes('\r\n\r\n')) rest()
  })
  const closed = new Promise<Error | undefined>(resolve => { sock.once('error', resolve); sock.once('close', () => resolve(undefined)) })
  sock.write(`PUT /v1/chunks/linger/0 HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\ncontent-digest: ${digestHeader(sha256Hex(body))}\r\n\r\n`)
  sock.write(body.subarray(0, 3 * MiB))
  const err = await closed
  t.match(answer, /^HTTP\/1\.1 500 /, 'answered 500 mid-body')
  t.equal(err, undefined, `the rest of the body sent and the connection closed without a reset (${err?.message ?? 'no error'})`)
  t.equal(off, body.length, 'every byte of the body was written')
  t.match(answer, /CDN_ERR_STORAGE/, 'the answer names the storage fault')
})

t.test('HttpService: a handler that fails mid-body for its own reasons is a server fault; a client that leaves is not', async t => {
  const sink = logSink()
  const registry = new Registry()
  const cfg = loadConfig({ env: {}, overrides: {} })
  const svc = new HttpService({ name: 'test', http: cfg.http, logRequests: false, logger: createLogger('test', 'info', sink), registry, ready: () => true,
    routes: [{ path: '/up', methods: { PUT: async req => {
      let n = 0
      // what a disk write failing inside the loop does: the iterator destroys the request on the way out
      for await (const piece of req) if ((n += (piece as Buffer).length) > MiB) throw new Error('our own bug, not the client')
    } } }] })
  await svc.listen(0, '127.0.0.1')
  t.teardown(() => svc.close())
  const r = await put(`${svc.url}/up`, randomChunk(4 * MiB))
  t.equal(r.status, 500, `answered 500 (got ${r.status} ${JSON.stringify(r.json)})`)
  t.ok(sink.lines.some(l => l.level === 50 && /our own bug/.test(l.err?.message ?? l.msg)), 'logged at level 50')
  t.equal(await metric(svc.url, 'reelcdn_http_client_errors_total', { reason: 'client_gone' }), 0, 'not counted as a client gone')

  // the same route, and a client that leaves after 200 kB of 4 MiB
  const lines = sink.lines.length
  await new Promise<void>(resolve => {
    const s = net.connect(Number(new URL(svc.url).port), '127.0.0.1', () => {
      s.write(`PUT /up HTTP/1.1\r\nhost: t\r\ncontent-length: ${4 * MiB}\r\n\r\n`)
      s.write(Buffer.alloc(200_000), () => setTimeout(() => s.destroy(), 50))
    })
    s.on('close', () => resolve())
    s.on('error', () => {})
  })
  await until(() => svc.active === 0, 'the cut upload handled')
  t.equal(await metric(svc.url, 'reelcdn_http_client_errors_total', { reason: 'client_gone' }), 1, 'a client that leaves is counted as gone')
  t.same(sink.lines.slice(lines).filter(l => l.level >= 50).map(l => l.msg), [], 'and logged below level 50')
})
