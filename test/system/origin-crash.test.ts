import t from 'tap'
import { readdirSync, statSync, writeFileSync, mkdirSync, existsSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { digestHeader } from '../../lib/integrity/digest.js'
import { exited, spawnCli } from '../helpers/spawn.js'
import { get, putChunk, randomChunk, sha256, startTestOrigin } from '../helpers/origin.js'

const MiB = 1024 * 1024

t.test('kill -9 during a PUT, then restart: no partial chunk, the shard serves what it had', async t => {
  const dir = t.testdir()
  const dataDir = join(dir, 'data')
  const { child, line } = await spawnCli(t, ['origin', '--port', '0', '--data-dir', dataDir, '--reserve', '0', '--log-level', 'info', '--insecure-open-writes'], 'origin shard ready')
  const url = line.url as string
  const kept = randomChunk(2 * MiB)
  t.equal((await putChunk(url, 'film', 0, kept)).status, 201)

  // start a 16 MiB upload and kill the shard once part of it is on disk
  const big = randomChunk(16 * MiB)
  let sent = 0
  const upload = request(`${url}/v1/chunks/film/1`, {
    method: 'PUT', headers: { 'content-digest': digestHeader(sha256(big)), 'content-length': String(big.length) },
    body: Readable.from((async function * () {
      for (; sent < big.length; sent += 256 * 1024) {
        yield big.subarray(sent, sent + 256 * 1024)
        await new Promise(r => setTimeout(r, 5))
      }
    })()),
  }).catch(err => err as Error)
  const tmp = join(dataDir, 'tmp')
  for (let i = 0; i < 500; i++) {
    const parts = readdirSync(tmp)
    if (parts.length && statSync(join(tmp, parts[0]!)).size > 2 * MiB) break
    await new Promise(r => setTimeout(r, 10))
  }
  t.ok(readdirSync(tmp).length === 1, 'an upload was in progress')
  child.kill('SIGKILL')
  await exited(child)
  t.type(await upload, Error, 'the client saw the upload fail')

  const o = await startTestOrigin(t, {}, dataDir)
  t.same(readdirSync(tmp), [], 'temp files removed at start-up')
  t.equal((await get(`${o.url}/v1/chunks/film/1`)).status, 404, 'the partial chunk is not visible')
  const whole = await get(`${o.url}/v1/chunks/film/0`)
  t.ok(whole.body.equals(kept), 'the chunk stored before the crash is served byte-exact')
  const inv = JSON.parse((await get(`${o.url}/v1/chunks`)).body.toString())
  t.same(inv.chunks.map((c: { index: number }) => c.index), [0])
})

t.test('restart reconciles index and disk: rows without files dropped, orphans verified then adopted or quarantined', async t => {
  const dataDir = join(t.testdir(), 'data')
  const a = randomChunk(300_000)
  const b = randomChunk(200_000)
  let o = await startTestOrigin(t, {}, dataDir)
  await putChunk(o.url, 'x', 0, a)
  await putChunk(o.url, 'x', 1, b)
  await o.close()
  // a crash between rename and insert leaves a complete file without a row; simulate it, plus a lost file and junk
  unlinkSync(o.store.path('x', 1, sha256(b)))
  const orphan = randomChunk(100_000)
  mkdirSync(join(dataDir, 'chunks', 'y'), { recursive: true })
  writeFileSync(join(dataDir, 'chunks', 'y', `0-${sha256(orphan)}.chunk`), orphan)
  writeFileSync(join(dataDir, 'chunks', 'y', `1-${sha256(orphan)}.chunk`), randomChunk(10))
  writeFileSync(join(dataDir, 'chunks', 'y', 'junk'), 'junk')

  o = await startTestOrigin(t, {}, dataDir)
  t.equal((await get(`${o.url}/v1/chunks/x/1`)).status, 404, 'row without a file dropped')
  t.ok((await get(`${o.url}/v1/chunks/x/0`)).body.equals(a), 'intact chunk kept')
  t.ok((await get(`${o.url}/v1/chunks/y/0`)).body.equals(orphan), 'verified orphan adopted')
  t.equal((await get(`${o.url}/v1/chunks/y/1`)).status, 404, 'orphan failing its digest not adopted')
  t.equal(readdirSync(join(dataDir, 'quarantine')).length, 2, 'bad orphan and junk quarantined')
  t.notOk(existsSync(join(dataDir, 'chunks', 'y', 'junk')))
  const metrics = (await get(`${o.url}/metrics`)).body.toString()
  t.match(metrics, /reelcdn_origin_recovery_actions_total\{action="adopted"[^}]*\} 1/)
})

t.test('SIGTERM drains: in-flight reads finish, then the process exits 0', async t => {
  const dataDir = join(t.testdir(), 'data')
  const { child, line } = await spawnCli(t, ['origin', '--port', '0', '--data-dir', dataDir, '--reserve', '0', '--insecure-open-writes'], 'origin shard ready')
  const url = line.url as string
  const chunk = randomChunk(8 * MiB)
  await putChunk(url, 'z', 0, chunk)
  const res = await request(`${url}/v1/chunks/z/0`)
  child.kill('SIGTERM')
  const body = Buffer.from(await res.body.arrayBuffer())
  t.ok(body.equals(chunk), 'the read in flight completed')
  t.equal(await exited(child), 0)
})

t.test('a bad setting stops the shard with a message naming it', async t => {
  const { spawnSync } = await import('node:child_process')
  const { CLI } = await import('../helpers/spawn.js')
  const r = spawnSync(process.execPath, [CLI, 'origin', '--port', '99999'], { encoding: 'utf8' })
  t.not(r.status, 0)
  t.match(r.stderr, /origin\.port.*99999/)
  const e = spawnSync(process.execPath, [CLI, 'origin'], { encoding: 'utf8', env: { ...process.env, REELCDN_ORIGIN_SCRUB_RATE_MBPS: 'fast' } })
  t.not(e.status, 0)
  t.match(e.stderr, /origin\.scrubRateMBps.*"fast"/)
  const h = spawnSync(process.execPath, [CLI, 'origin', '--help'], { encoding: 'utf8' })
  t.equal(h.status, 0)
  t.match(h.stdout, /--memory-cache <bytes>.*\n?.*default: 1 GiB/)
})
