import t, { type Test } from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { request as httpRequest, type ClientRequest } from 'node:http'
import { connect } from 'node:net'
import Database from 'better-sqlite3'
import { digestHeader } from '../../lib/integrity/digest.js'
import { exited, spawnCli } from '../helpers/spawn.js'
import { get, randomChunk, sha256, until } from '../helpers/origin.js'

/**
 * Graceful shutdown of `reelcdn origin`, as a process: on SIGINT or SIGTERM it
 * stops accepting, lets requests in flight finish up to http.shutdownGraceMs,
 * cuts the rest, closes SQLite, and exits 0. The slow request is a PUT whose
 * body the test holds back, so nothing here depends on timing but the deadline.
 */
const MiB = 1024 * 1024

async function inFlight(url: string): Promise<number> {
  const text = (await get(`${url}/metrics`)).body.toString()
  const line = text.split('\n').find(l => l.startsWith('reelcdn_http_requests_in_flight'))
  return Number(line?.split(' ').pop())
}

/** A PUT of `body` that sends half of it now; `rest()` sends the other half. */
function slowPut(url: string, id: string, body: Buffer, reqId?: string) {
  const { hostname, port } = new URL(url)
  let req!: ClientRequest
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req = httpRequest({ host: hostname, port, method: 'PUT', path: `/v1/chunks/${id}/0`, agent: false,
      headers: { 'content-digest': digestHeader(sha256(body)), 'content-length': body.length, ...(reqId ? { 'x-request-id': reqId } : {}) } }, res => {
      let text = ''
      res.on('data', d => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
  answer.catch(() => {})
  req.write(body.subarray(0, body.length >> 1))
  return { answer, rest: () => req.end(body.subarray(body.length >> 1)) }
}

/** Resolves true once a TCP connect to the shard is refused. */
function refused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise(resolve => {
    const s = connect(Number(port), hostname)
    s.once('connect', () => { s.destroy(); resolve(false) })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })
}

/** The index as the next start would find it: cleanly closed (no WAL left), intact, with these chunks. */
function checkIndex(t: Test, dataDir: string, want: { id: string; present: boolean }[]) {
  const file = join(dataDir, 'index.sqlite')
  t.notOk(existsSync(`${file}-wal`), 'SQLite was closed: its WAL was checkpointed and removed')
  const db = new Database(file, { readonly: true })
  try {
    t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'the index is intact')
    const count = db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM chunks WHERE content_id = ?')
    for (const { id, present } of want) t.equal(count.get(id)!.n, present ? 1 : 0, `chunk ${id} ${present ? 'is' : 'is not'} indexed`)
  } finally {
    db.close()
  }
}

async function startShard(t: Test, graceMs: number) {
  const dataDir = join(t.testdir(), 'data')
  const { child, line, lines } = await spawnCli(t, ['origin', '--port', '0', '--data-dir', dataDir, '--reserve', '0', '--log-level', 'info', '--log-requests',
    '--insecure-open-writes'],
    'origin shard ready', { REELCDN_SHARD_TOKEN: '', REELCDN_HTTP_SHUTDOWN_GRACE_MS: String(graceMs) })
  return { child, dataDir, url: line.url as string, lines }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  t.test(`${signal}: the request in flight completes, new connections are refused, SQLite is closed, exit 0`, async t => {
    const { child, dataDir, url, lines } = await startShard(t, 60_000)
    const body = randomChunk(2 * MiB)
    const put = slowPut(url, 'in-flight', body, 'slow-put-1')
    // the PUT and this /metrics request itself
    await until(async () => await inFlight(url) === 2, 'the PUT to be in flight')
    t.ok(existsSync(join(dataDir, 'index.sqlite-wal')), 'while it runs, the index has a WAL (so its absence later means a clean close)')

    child.kill(signal)
    await until(() => refused(url), 'the listener to close')
    t.pass('a new connection is refused while the PUT is still open')
    t.equal(child.exitCode, null, 'the process waits for the request in flight')

    put.rest()
    const r = await put.answer
    t.equal(r.status, 201, 'the request in flight was answered')
    t.equal(JSON.parse(r.text).sha256, sha256(body))
    t.equal(await exited(child), 0, 'exit code 0')
    checkIndex(t, dataDir, [{ id: 'in-flight', present: true }])
    // its stdout, read to the end: the PUT is one JSON line under the id the client gave
    if (child.stdout!.readable) await new Promise(r => child.once('close', r))
    const mine = lines.filter(l => l.reqId === 'slow-put-1')
    t.equal(mine.length, 1, 'the request in flight logged one line')
    t.match(mine[0], { msg: 'request', method: 'PUT', url: '/v1/chunks/in-flight/0', status: 201, finished: true })
  })
}

t.test('a request that outlives http.shutdownGraceMs is cut, and the process still exits 0', async t => {
  const graceMs = 500
  const { child, dataDir, url } = await startShard(t, graceMs)
  const put = slowPut(url, 'too-slow', randomChunk(2 * MiB))
  await until(async () => await inFlight(url) === 2, 'the PUT to be in flight')

  const t0 = performance.now()
  child.kill('SIGTERM')
  const cut = await put.answer.then(() => 'answered', (err: NodeJS.ErrnoException) => err.code ?? err.message)
  const waited = performance.now() - t0
  t.not(cut, 'answered', `the request was cut (${cut})`)
  t.ok(waited >= graceMs - 20, `only after the grace period (${waited.toFixed(0)} ms >= ${graceMs} ms)`)
  const code = await Promise.race([exited(child), new Promise(r => setTimeout(() => r('still running'), 15_000))])
  t.equal(code, 0, 'the process exited 0')
  checkIndex(t, dataDir, [{ id: 'too-slow', present: false }])
})
