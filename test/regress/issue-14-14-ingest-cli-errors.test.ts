import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody, type TestT } from '../system/harness.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { sha256Hex } from '../../router/cluster/keys.js'
import { runCli } from '../helpers/spawn.js'
import { ingestFile } from '../../router/ingest/ingest-cli.js'
import { lingerOnClose } from '../../lib/http/http.js'

/**
 * Issue 14, item 14: every error `reelcdn ingest` prints names what was wrong.
 * Without a valid admin token it hashed the whole file, then printed
 * `write EPIPE` (the router answered 401 and closed while the body was being
 * sent); a directory printed `EISDIR` without the path. Now the file and the
 * credential are checked before hashing, and a router that answers early is
 * reported by its answer.
 */
const MiB = 1024 * 1024

/** The CLI without the environment's admin token (each case gives its own). */
function cli(args: string[], env: NodeJS.ProcessEnv) {
  return runCli(args, { REELCDN_ROUTER_TOKEN: '', ...env })
}

/**
 * A router that takes the credential, then refuses the upload with `status`
 * at its first byte and closes the connection. Like our services (lib/http/http.ts)
 * it closes lingering, so the answer gets through; with `rst` it closes at
 * once, the kernel resets the connection and the answer may be lost. With `revoked` its
 * token check passes once, then fails (a token rotated mid-ingest).
 */
async function refusingRouter(t: TestT, status: number, code: string, message: string, o: { rst?: boolean; revoked?: boolean } = {}): Promise<string> {
  let checks = 0
  const answer = (res: http.ServerResponse, st: number, body: object) => res.writeHead(st, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  const server = http.createServer((req, res) => {
    if (req.url === '/v1/admin' || req.url?.endsWith('/meta')) req.resume()
    if (req.url?.endsWith('/meta')) return void answer(res, 404, {})
    if (req.url === '/v1/admin') {
      if (o.revoked && checks++ > 0) return void answer(res, 401, { error: { code: 'CDN_ERR_UNAUTHORIZED', message: 'missing or invalid bearer token' } })
      return void answer(res, 200, { admin: true })
    }
    res.writeHead(status, { 'content-type': 'application/json', connection: 'close' })
    if (!o.rst) lingerOnClose(req)
    if (o.rst) res.end(JSON.stringify({ error: { code, message } }), () => req.socket.destroy())
    else {
      res.end(JSON.stringify({ error: { code, message } }))
      req.resume()
    }
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('a wrong or missing admin token is reported by the router\'s 401 before the file is hashed', async t => {
  const c = await TestCluster.start(t)
  const file = join(c.dir, 'big.mp4')
  await writeFile(file, randomBody(32 * MiB))
  for (const [what, env] of [['a wrong token', { REELCDN_ROUTER_TOKEN: 'wrong' }], ['no token', {}]] as const) {
    const r = await cli(['ingest', file, '--id', 'big', '--router', c.url], env)
    t.equal(r.code, 1, `${what}: exit code 1`)
    t.match(r.stderr, /401/, `${what}: the router's status is printed: ${r.stderr.trim()}`)
    t.match(r.stderr, /missing or invalid bearer token/, `${what}: and its message`)
    t.match(r.stderr, /REELCDN_ROUTER_TOKEN/, `${what}: and where the token comes from`)
    t.notMatch(r.stderr, /EPIPE|ECONNRESET/, `${what}: no socket error`)
    t.notMatch(r.stderr, /hashing/, `${what}: the file was not hashed first`)
    t.equal(r.stdout, '', `${what}: nothing on stdout`)
  }
  t.equal((await c.get('/v1/content/big/meta')).status, 404, 'nothing was ingested')
})

t.test('a file that is not there, a directory, or unreadable: the message names the path and the problem', async t => {
  const dir = t.testdir({ films: {}, 'locked.mp4': 'x'.repeat(100) })
  // no router answers here: the file is checked first
  const o = { category: [], router: 'http://127.0.0.1:1' }
  const env = { REELCDN_ROUTER_TOKEN: TOKEN }
  const films = join(dir, 'films')
  await t.rejects(ingestFile(films, { id: 'd', ...o }, env), { code: 'CDN_ERR_BAD_FILE', message: `${films} is a directory: give the video file itself` })
  const missing = join(dir, 'nope.mp4')
  await t.rejects(ingestFile(missing, { id: 'm', ...o }, env), { code: 'CDN_ERR_BAD_FILE', message: `no such file: ${missing}` })
  const locked = join(dir, 'locked.mp4')
  await chmod(locked, 0o000)
  if (process.getuid?.() === 0) t.comment('running as root: every file is readable, the unreadable case is not checked')
  else await t.rejects(ingestFile(locked, { id: 'l', ...o }, env), { code: 'CDN_ERR_BAD_FILE', message: `cannot read ${locked}: permission denied` })

  const r = await cli(['ingest', films, '--id', 'd', '--router', o.router], env)
  t.equal(r.stderr, `reelcdn: ${films} is a directory: give the video file itself\n`, 'the CLI prints it, and nothing else')
  t.equal(r.code, 1)
})

t.test('a router that cannot be reached is named, with the reason', async t => {
  const dir = t.testdir({ 'f.mp4': 'x'.repeat(1000) })
  const closed = http.createServer()
  await new Promise<void>(r => closed.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`
  await new Promise<void>(r => closed.close(() => r()))
  await t.rejects(ingestFile(join(dir, 'f.mp4'), { id: 'f', category: [], router: url }, { REELCDN_ROUTER_TOKEN: TOKEN }),
    { message: new RegExp(`cannot reach the router at ${url}.*ECONNREFUSED`) })
})

t.test('an upload the router refuses at its first byte (403, 413, 507) is reported by the router\'s answer, not by the cut connection', async t => {
  const dir = t.testdir()
  const file = join(dir, 'f.mp4')
  await writeFile(file, randomBody(32 * MiB))
  for (const [status, code, message] of [
    [403, 'CDN_ERR_FORBIDDEN', 'this token may not ingest'],
    [413, 'CDN_ERR_TOO_LARGE', 'the title exceeds the limit'],
    [507, 'CDN_ERR_NO_SPACE', 'shard shard-2 is full: below the reserve'],
  ] as const) {
    const url = await refusingRouter(t, status, code, message)
    await t.rejects(ingestFile(file, { id: 'f', category: [], router: url }, { REELCDN_ROUTER_TOKEN: TOKEN }),
      { code, message: new RegExp(`router answered ${status}.*${message}`) }, `${status}`)
  }
  // the close resets the connection: the answer is read, or the cut is named with how far the upload got
  for (let i = 0; i < 3; i++) {
    const url = await refusingRouter(t, 403, 'CDN_ERR_FORBIDDEN', 'this token may not ingest', { rst: true })
    await t.rejects(ingestFile(file, { id: 'f', category: [], router: url }, { REELCDN_ROUTER_TOKEN: TOKEN }),
      { message: new RegExp(`router answered 403.*this token may not ingest|the router at ${url} closed the connection after \\d+ of ${32 * MiB} bytes`) },
      'a reset connection')
  }
  // a token refused between the check and the upload: its 401 is the error, whether or not the answer was read
  const url = await refusingRouter(t, 401, 'CDN_ERR_UNAUTHORIZED', 'missing or invalid bearer token', { rst: true, revoked: true })
  await t.rejects(ingestFile(file, { id: 'f', category: [], router: url }, { REELCDN_ROUTER_TOKEN: TOKEN }),
    { code: 'CDN_ERR_UNAUTHORIZED', message: /router answered 401: missing or invalid bearer token \(check the admin token/ }, 'a token revoked mid-ingest')
})

t.test('the router\'s own early answers reach an uploader that is still sending (lingering close, not a reset)', async t => {
  const c = await TestCluster.start(t)
  const published = randomBody(1000)
  t.equal((await c.ingest('film', published)).status, 201)
  const body = randomBody(32 * MiB)
  const put = (id: string, headers: Record<string, string>) =>
    request(`${c.url}/v1/content/${id}`, { method: 'PUT', body: Readable.from([body]), headers: { authorization: `Bearer ${TOKEN}`, ...headers } })
      .then(async r => `${r.statusCode} ${(await r.body.text()).slice(0, 60)}`)
      .catch((err: Error) => `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`)
  for (let i = 0; i < 4; i++) {
    t.match(await put('film', { 'content-digest': digestHeader(sha256Hex(body)) }), /^409 \{"error":\{"code":"CDN_ERR_CONFLICT"/, 'other bytes under a published id: 409 from the digest alone, its body whole')
    t.match(await put('film', { 'content-digest': digestHeader(sha256Hex(published)) }), /^200 \{"status":"exists"/, 'the published bytes: 200 from the digest alone')
    t.match(await put('film2', { 'reelcdn-meta': '{not json' }), /^400 \{"error":\{"code":"CDN_ERR_BAD_META"/, 'a bad Reelcdn-Meta: 400')
  }
})

t.test('a published title with other bytes: 409 naming both digests', async t => {
  const c = await TestCluster.start(t)
  const file = join(c.dir, 'a.mp4')
  await writeFile(file, randomBody(1000))
  const env = { REELCDN_ROUTER_TOKEN: TOKEN }
  await ingestFile(file, { id: 'a', category: [], router: c.url }, env)
  await writeFile(file, randomBody(1000))
  await t.rejects(ingestFile(file, { id: 'a', category: [], router: c.url }, env), { code: 'CDN_ERR_CONFLICT', message: /title a is published with sha256 [0-9a-f]{64}, this file is [0-9a-f]{64}/ })
})
