import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import { BLOCK_LIST, blockListHead, WANT_BLOCK_LIST } from '../../lib/integrity/block-list-header.js'
import { TitleData } from './title.js'
import { timedRead } from './timed-read.js'

const MiB = 1024 * 1024
const RELAY = fileURLToPath(new URL('./bare-relay.js', import.meta.url))
const C_SOURCE = fileURLToPath(new URL('../../../bench/lib/bare-relay.c', import.meta.url))
type Teardown = { teardown(fn: () => unknown): void }

/** A shard answering /c/{i} with chunk i of the title and its block list in the head; `lie` flips a byte after the list is taken. */
async function shard(t: Teardown, title: TitleData, chunkSize: number, lie?: { chunk: number; at: number }) {
  const seen: http.IncomingHttpHeaders[] = []
  const server = http.createServer((req, res) => {
    seen.push(req.headers)
    const i = Number(/^\/c\/(\d+)$/.exec(req.url ?? '')?.[1] ?? -1)
    if (req.headers.authorization !== 'Bearer tok' || i < 0) return void res.writeHead(403).end('{"error":"no"}')
    const from = i * chunkSize
    const body = title.bytes(from, Math.min(title.size, from + chunkSize) - 1)
    const crcs = blockCrcs(body)
    if (lie?.chunk === i) body[lie.at] = body[lie.at]! ^ 0xff
    res.writeHead(200, { 'content-length': body.length, ...(req.headers[WANT_BLOCK_LIST] ? blockListHead(crcs) : {}) })
    res.end(body)
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { server.closeAllConnections(); server.close(() => r()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

/** The relay as the fill row runs it; resolves with its URL and what it printed to stderr so far. */
async function relay(t: Teardown, args: string[], exe?: string) {
  const child = exe ? spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(process.execPath, [RELAY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', d => { err += String(d) })
  t.teardown(() => { child.kill() })
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', d => {
      const m = /"url":"([^"]+)"/.exec(String(d))
      if (m) resolve(m[1]!)
    })
    child.once('exit', code => reject(new Error(`the relay exited (${code}): ${err}`)))
  })
  return { url, stderr: () => err, pid: child.pid! }
}

t.test('relays every chunk in turn, each block checked, as one body the row can read', async t => {
  // chunks that end off a 1 MiB block and off a 64 KiB block (the title's own chunking is not the shard's here)
  const chunk = 3 * MiB + 100
  const title = new TitleData('bare', 7 * MiB, MiB)
  const s = await shard(t, title, chunk)
  const r = await relay(t, [s.url, 'tok', String(title.size), '/c/0', '/c/1', '/c/2'])
  const read = await timedRead([{ url: `${r.url}/anything`, offset: 0, length: title.size }], [r.pid], [], 100)
  t.equal(read.bytes, title.size, 'every byte, its block stamps checked by the reader')
  t.equal(s.seen.length, 3)
  t.ok(s.seen.every(h => h[WANT_BLOCK_LIST] === '1'), 'the block list asked for in each answer\'s head')
  // a second GET on a new connection gets the whole title again
  const again = await timedRead([{ url: `${r.url}/x`, offset: 0, length: title.size }], [], [], 100)
  t.equal(again.bytes, title.size)
  t.equal(r.stderr(), '')
})

t.test('a block that fails its CRC32C cuts the player: no byte of it goes on', async t => {
  const chunk = 2 * MiB
  const title = new TitleData('bare', 2 * chunk, chunk)
  // a byte in the second chunk's 18th 64 KiB block (its second 1 MiB block)
  const s = await shard(t, title, chunk, { chunk: 1, at: MiB + 65536 + 5 })
  const r = await relay(t, [s.url, 'tok', String(title.size), '/c/0', '/c/1'])
  await t.rejects(timedRead([{ url: `${r.url}/`, offset: 0, length: title.size }], [], [], 100), /closed before the body's end|ECONNRESET/)
  t.match(r.stderr(), /block 17 of \/c\/1 failed its CRC32C/)
})

t.test('a shard that refuses, or answers without a block list, cuts the player and says so', async t => {
  const title = new TitleData('bare', MiB, MiB)
  const s = await shard(t, title, MiB)
  const refused = await relay(t, [s.url, 'wrong', String(title.size), '/c/0'])
  await t.rejects(timedRead([{ url: `${refused.url}/`, offset: 0, length: title.size }], [], [], 100))
  t.match(refused.stderr(), /the shard answered: HTTP\/1.1 403/)

  const plain = http.createServer((_q, res) => void res.writeHead(200, { 'content-length': 4 }).end('abcd'))
  await new Promise<void>(r => plain.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { plain.closeAllConnections(); plain.close(() => r()) }))
  const noList = await relay(t, [`http://127.0.0.1:${(plain.address() as AddressInfo).port}`, 'tok', '4', '/c/0'])
  await t.rejects(timedRead([{ url: `${noList.url}/`, offset: 0, length: 4 }], [], [], 100))
  t.match(noList.stderr(), new RegExp(`the shard answered: HTTP/1.1 200 OK`))
  t.notMatch(noList.stderr(), new RegExp(BLOCK_LIST))
})

t.test('without its arguments it says how to run it', async t => {
  const child = spawn(process.execPath, [RELAY, 'http://127.0.0.1:1'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr.on('data', d => { err += String(d) })
  const code = await new Promise(r => child.once('exit', r))
  t.equal(code, 2)
  t.match(err, /usage: bare-relay.js SHARD_URL TOKEN SIZE PATH/)
})

t.test('the C relay: every byte relayed, checked or spliced; a lying block cut in verify mode; a usage error', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'reelcdn-test-bare-relay-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const exe = join(dir, 'bare-relay')
  // the fill row builds it the same way (bench/rows/fill.ts)
  await promisify(execFile)('cc', ['-O2', '-march=native', '-o', exe, C_SOURCE])
  const chunk = 3 * MiB + 100
  const title = new TitleData('bare', 7 * MiB, MiB)
  const s = await shard(t, title, chunk)
  const port = new URL(s.url).port
  for (const mode of ['verify', 'splice']) {
    const r = await relay(t, [mode, port, 'tok', String(title.size), '/c/0', '/c/1', '/c/2'], exe)
    for (let i = 0; i < 2; i++) {
      const read = await timedRead([{ url: `${r.url}/`, offset: 0, length: title.size }], [], [], 100)
      t.equal(read.bytes, title.size, `${mode}: every byte, read ${i + 1}`)
    }
    t.equal(r.stderr(), '')
  }
  t.ok(s.seen.every(h => h[WANT_BLOCK_LIST] === '1' && h.authorization === 'Bearer tok'))

  const liar = await shard(t, new TitleData('bare', 2 * MiB, MiB), 2 * MiB, { chunk: 0, at: 70_000 })
  const cut = await relay(t, ['verify', new URL(liar.url).port, 'tok', String(2 * MiB), '/c/0'], exe)
  await t.rejects(timedRead([{ url: `${cut.url}/`, offset: 0, length: 2 * MiB }], [], [], 100))
  t.match(cut.stderr(), /block 1 of \/c\/0 failed its CRC32C/)
  const refused = await relay(t, ['verify', port, 'wrong', String(MiB), '/c/0'], exe)
  await t.rejects(timedRead([{ url: `${refused.url}/`, offset: 0, length: MiB }], [], [], 100))
  t.match(refused.stderr(), /the shard answered: HTTP\/1.1 403/)

  const usage = spawn(exe, ['copy', port], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  usage.stderr.on('data', d => { err += String(d) })
  t.equal(await new Promise(r => usage.once('exit', r)), 2)
  t.match(err, /usage: bare-relay verify\|splice SHARD_PORT/)
})
