import t from 'tap'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { execFile, spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import { blockListHead, WANT_BLOCK_LIST } from '../../lib/integrity/block-list-header.js'
import { TitleData } from './title.js'
import { RawGets, timedRead } from './timed-read.js'
import { until } from '../../test/helpers/edge.js'
import { exited } from '../../test/helpers/spawn.js'

const MiB = 1024 * 1024
const RELAY = fileURLToPath(new URL('./bare-relay.js', import.meta.url))
const C_SOURCE = fileURLToPath(new URL('../../../bench/lib/bare-relay.c', import.meta.url))
type Teardown = { teardown(fn: () => unknown): void }

interface ShardOptions {
  /** flips a byte of chunk `chunk` at `at` after its list was taken */
  lie?: { chunk: number; at: number }
  /** the list in the head, cut short by 4 bytes */
  shortList?: boolean
}

/** A shard answering /c/{i} with chunk i of the title (chunks of `chunkSize`) and its block list in the head. */
async function shard(t: Teardown, title: TitleData, chunkSize: number, o: ShardOptions = {}) {
  const seen: http.IncomingHttpHeaders[] = []
  let open = 0
  const server = http.createServer((req, res) => {
    seen.push(req.headers)
    const i = Number(/^\/c\/(\d+)$/.exec(req.url ?? '')?.[1] ?? -1)
    if (req.headers.authorization !== 'Bearer tok' || i < 0) return void res.writeHead(403).end('{"error":"no"}')
    const from = i * chunkSize
    const body = title.bytes(from, Math.min(title.size, from + chunkSize) - 1)
    let crcs = blockCrcs(body)
    if (o.shortList) crcs = crcs.subarray(4)
    if (o.lie?.chunk === i) body[o.lie.at] = body[o.lie.at]! ^ 0xff
    res.writeHead(200, { 'content-length': body.length, ...(req.headers[WANT_BLOCK_LIST] ? blockListHead(crcs) : {}) })
    res.end(body)
  })
  server.on('connection', s => { open++; s.once('close', () => { open-- }) })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { server.closeAllConnections(); server.close(() => r()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, open: () => open }
}

/** A relay as the fill row runs it (Node, or the C one with `exe`): its URL, pid and what it printed to stderr. */
async function relay(t: Teardown, args: string[], exe?: string) {
  const child = exe ? spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(process.execPath, [RELAY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', d => { err += String(d) })
  t.teardown(() => { child.kill() })
  const url = await new Promise<string>((resolve, reject) => {
    // the ready line may come in more than one read
    let out = ''
    child.stdout.on('data', d => {
      out += String(d)
      const m = /"url":"([^"]+)"/.exec(out)
      if (m) resolve(m[1]!)
    })
    child.once('exit', code => reject(new Error(`the relay exited (${code}): ${err}`)))
  })
  /** resolves once stderr matches (the relay writes it before it cuts, but the pipe may be read after the socket's close) */
  const said = async (re: RegExp) => {
    await until(() => re.test(err), `the relay's stderr to match ${re}`, 2000).catch(() => {})
    return err
  }
  return { url, pid: child.pid!, stderr: () => err, said }
}

/** One GET on a raw socket, not read for `stallMs` first: the answer's body bytes as they came, up to its Content-Length or the close. */
async function rawGet(url: string, stallMs = 0): Promise<Buffer> {
  const u = new URL(url)
  const sock = net.connect(Number(u.port), u.hostname)
  // a reset is a cut like any other: the bytes so far are the answer
  sock.on('error', () => {})
  await once(sock, 'connect')
  sock.pause()
  sock.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n')
  await new Promise(r => setTimeout(r, stallMs))
  const parts: Buffer[] = []
  let got = 0
  let want = Infinity
  await new Promise<void>(resolve => {
    sock.on('data', (b: Buffer) => {
      parts.push(b)
      got += b.length
      if (want === Infinity) {
        const all = Buffer.concat(parts)
        const end = all.indexOf('\r\n\r\n')
        const m = /content-length: (\d+)/i.exec(all.subarray(0, Math.max(0, end)).toString('latin1'))
        if (end >= 0 && m) want = end + 4 + Number(m[1])
      }
      if (got >= want) resolve()
    })
    sock.once('close', () => resolve())
    sock.resume()
  })
  sock.destroy()
  const all = Buffer.concat(parts)
  const end = all.indexOf('\r\n\r\n')
  return end >= 0 ? all.subarray(end + 4) : Buffer.alloc(0)
}

t.test('relays every chunk in turn, each block checked, as one body; the next GET on the connection gets it again', async t => {
  // chunks that end off a 1 MiB block and off a 64 KiB block (the title's own chunking is not the shard's here)
  const chunk = 3 * MiB + 100
  const title = new TitleData('bare', 7 * MiB, MiB)
  const s = await shard(t, title, chunk)
  const r = await relay(t, [s.url, 'tok', String(title.size), '/c/0', '/c/1', '/c/2'])
  const read = await timedRead([{ url: `${r.url}/anything`, offset: 0, length: title.size }], [r.pid], [], 100)
  t.equal(read.bytes, title.size, 'every byte, its block stamps checked by the reader')
  t.equal(s.seen.length, 3)
  t.ok(s.seen.every(h => h[WANT_BLOCK_LIST] === '1'), 'the block list asked for in each answer\'s head')
  const gets = new RawGets()
  t.teardown(() => gets.close())
  for (let i = 0; i < 2; i++) {
    const parts: Buffer[] = []
    t.equal(await gets.get(`${r.url}/again`, {}, p => void parts.push(Buffer.from(p))), title.size, `GET ${i + 1} on one connection`)
    t.ok(Buffer.concat(parts).equals(title.bytes(0, title.size - 1)), `GET ${i + 1}: byte-exact`)
  }
  t.equal(r.stderr(), '')
})

t.test('a player that stops reading gets every byte when it reads again (the relay pauses its shard meanwhile: without that it runs out of blocks and stops)', async t => {
  // far more than the relay's eight blocks and the sockets' buffers hold
  const title = new TitleData('bare', 48 * MiB, MiB)
  const s = await shard(t, title, 16 * MiB)
  const r = await relay(t, [s.url, 'tok', String(title.size), '/c/0', '/c/1', '/c/2'])
  const body = await rawGet(r.url, 500)
  t.equal(body.length, title.size)
  t.ok(body.equals(title.bytes(0, title.size - 1)), 'byte-exact')
  t.equal(r.stderr(), '')
})

t.test('a block that fails its CRC32C cuts the player: no byte of it goes on, nor after it', async t => {
  const chunk = 2 * MiB
  const title = new TitleData('bare', 2 * chunk, chunk)
  // a byte in the second chunk's 18th 64 KiB block (its second 1 MiB block)
  const s = await shard(t, title, chunk, { lie: { chunk: 1, at: MiB + 65536 + 5 } })
  const r = await relay(t, [s.url, 'tok', String(title.size), '/c/0', '/c/1'])
  const body = await rawGet(r.url)
  t.equal(body.length, 3 * MiB, 'chunk 0 and the first 1 MiB of chunk 1, nothing past them')
  t.ok(body.equals(title.bytes(0, 3 * MiB - 1)))
  t.match(await r.said(/failed/), /block 17 of \/c\/1 failed its CRC32C/)
})

t.test('a refusal, an answer without a list, a list of the wrong length or bodies short of SIZE cut the player and say so', async t => {
  const title = new TitleData('bare', 2 * MiB, MiB)
  const s = await shard(t, title, MiB)
  const refused = await relay(t, [s.url, 'wrong', String(title.size), '/c/0'])
  t.equal((await rawGet(refused.url)).length, 0)
  t.match(await refused.said(/answered/), /the shard answered: HTTP\/1.1 403/)

  const plain = http.createServer((_q, res) => void res.writeHead(200, { 'content-length': 4 }).end('abcd'))
  await new Promise<void>(r => plain.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { plain.closeAllConnections(); plain.close(() => r()) }))
  const noList = await relay(t, [`http://127.0.0.1:${(plain.address() as AddressInfo).port}`, 'tok', '4', '/c/0'])
  t.equal((await rawGet(noList.url)).length, 0)
  t.match(await noList.said(/answered/), /the shard answered: HTTP\/1.1 200 OK/)

  const short = await shard(t, title, MiB, { shortList: true })
  const wrongList = await relay(t, [short.url, 'tok', String(MiB), '/c/0'])
  t.equal((await rawGet(wrongList.url)).length, 0)
  t.match(await wrongList.said(/wrong length/), /a block list of the wrong length for \/c\/0/)

  const tooBig = await relay(t, [s.url, 'tok', String(3 * MiB), '/c/0', '/c/1'])
  t.equal((await rawGet(tooBig.url)).length, 2 * MiB, 'both bodies, then the cut')
  t.match(await tooBig.said(/came to/), /the bodies came to 2097152 bytes, not SIZE \(3145728\)/)
  const tooSmall = await relay(t, [s.url, 'tok', String(MiB + 5), '/c/0', '/c/1'])
  t.equal((await rawGet(tooSmall.url)).length, MiB, 'the first body; nothing of the one past SIZE')
  t.match(await tooSmall.said(/more than/), /the bodies come to more than SIZE \(1048581\) with \/c\/1/)
})

t.test('a player that connects while another is served waits for it, then gets every byte', async t => {
  const title = new TitleData('bare', 16 * MiB, MiB)
  const s = await shard(t, title, 8 * MiB)
  const r = await relay(t, [s.url, 'tok', String(title.size), '/c/0', '/c/1'])
  const [a, b] = await Promise.all([rawGet(r.url, 200), rawGet(r.url)])
  t.ok(a.equals(title.bytes(0, title.size - 1)), 'the first')
  t.ok(b.equals(title.bytes(0, title.size - 1)), 'the second')
  t.equal(r.stderr(), '')
})

t.test('a player that leaves ends its shard connection, and the next player is served', async t => {
  const title = new TitleData('bare', 32 * MiB, MiB)
  const s = await shard(t, title, 16 * MiB)
  const r = await relay(t, [s.url, 'tok', String(title.size), '/c/0', '/c/1'])
  const u = new URL(r.url)
  const sock = net.connect(Number(u.port), u.hostname)
  await once(sock, 'connect')
  sock.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n')
  await once(sock, 'data')
  sock.destroy()
  await until(() => s.open() === 0, 'the shard connection to close', 2000).catch(() => {})
  t.equal(s.open(), 0, 'the shard connection closed')
  const body = await rawGet(r.url)
  t.ok(body.equals(title.bytes(0, title.size - 1)), 'the next player gets every byte')
  t.equal(r.stderr(), '')
})

t.test('without its arguments it says how to run it', async t => {
  const child = spawn(process.execPath, [RELAY, 'http://127.0.0.1:1'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr.on('data', d => { err += String(d) })
  const code = await exited(child)
  t.equal(code, 2)
  t.match(err, /usage: bare-relay.js SHARD_URL TOKEN SIZE PATH/)
})

t.test('the C relay: every byte relayed (checked, copied or spliced); checked, a lying block cut; copied, it goes on; refusals; usage', async t => {
  const exe = join(t.testdir(), 'bare-relay')
  // the fill row builds it the same way (bench/rows/fill.ts)
  await promisify(execFile)('cc', ['-O2', '-march=native', '-o', exe, C_SOURCE])
  const chunk = 3 * MiB + 100
  const title = new TitleData('bare', 7 * MiB, MiB)
  const s = await shard(t, title, chunk)
  const port = new URL(s.url).port
  for (const mode of ['verify', 'copy', 'splice']) {
    const r = await relay(t, [mode, port, 'tok', String(title.size), '/c/0', '/c/1', '/c/2'], exe)
    for (let i = 0; i < 2; i++) {
      const read = await timedRead([{ url: `${r.url}/`, offset: 0, length: title.size }], [], [], 100)
      t.equal(read.bytes, title.size, `${mode}: every byte, read ${i + 1}`)
    }
    t.equal(r.stderr(), '')
  }
  t.ok(s.seen.every(h => h[WANT_BLOCK_LIST] === '1' && h.authorization === 'Bearer tok'))

  const lying = new TitleData('bare', 2 * MiB, MiB)
  const liar = await shard(t, lying, 2 * MiB, { lie: { chunk: 0, at: MiB + 70_000 } })
  const cut = await relay(t, ['verify', new URL(liar.url).port, 'tok', String(2 * MiB), '/c/0'], exe)
  const body = await rawGet(cut.url)
  t.ok(body.equals(lying.bytes(0, MiB - 1)), 'verify: the first 1 MiB, not the one with the lie')
  t.match(await cut.said(/failed/), /block 17 of \/c\/0 failed its CRC32C/)
  const trusting = await relay(t, ['copy', new URL(liar.url).port, 'tok', String(2 * MiB), '/c/0'], exe)
  const copied = await rawGet(trusting.url)
  t.equal(copied.length, 2 * MiB, 'copy checks nothing: all of it')
  t.not(copied[MiB + 70_000], lying.bytes(0, 2 * MiB - 1)[MiB + 70_000], 'the lie with it')

  const refused = await relay(t, ['verify', port, 'wrong', String(MiB), '/c/0'], exe)
  t.equal((await rawGet(refused.url)).length, 0)
  t.match(await refused.said(/answered/), /the shard answered: HTTP\/1.1 403/)
  const short = await shard(t, title, MiB, { shortList: true })
  const wrongList = await relay(t, ['verify', new URL(short.url).port, 'tok', String(MiB), '/c/0'], exe)
  t.equal((await rawGet(wrongList.url)).length, 0)
  t.match(await wrongList.said(/wrong length/), /a block list of the wrong length for \/c\/0/)
  const tooBig = await relay(t, ['verify', port, 'tok', String(8 * MiB), '/c/0', '/c/1', '/c/2'], exe)
  t.equal((await rawGet(tooBig.url)).length, title.size)
  t.match(await tooBig.said(/came to/), /the bodies came to 7340032 bytes, not SIZE \(8388608\)/)
  const tooSmall = await relay(t, ['verify', port, 'tok', String(chunk), '/c/0', '/c/1'], exe)
  t.equal((await rawGet(tooSmall.url)).length, chunk, 'the first body; nothing of the one past SIZE')
  t.match(await tooSmall.said(/more than/), /the bodies come to more than SIZE \(3145828\) with \/c\/1/)

  const usage = spawn(exe, ['sendfile', port], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  usage.stderr.on('data', d => { err += String(d) })
  t.equal(await exited(usage), 2)
  t.match(err, /usage: bare-relay verify\|copy\|splice SHARD_PORT/)
})
