import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody, replicas } from './harness.js'
import { CLI } from '../helpers/spawn.js'
import type { RepairReport } from '../../router/repair/repair-report.js'

/**
 * The repairer's copy rate (router.repair.rateMBps, `router repair --rate`),
 * and what `reelcdn router repair` tells an operator while it works. A shard
 * of three is wiped, so its copy of every chunk must come back.
 *
 * The throttle is a token bucket holding one second's worth of bytes, so a
 * pass copying N bytes at R bytes/s takes at least (N - R) / R seconds: that
 * lower bound is all the timing asserted here.
 */
const CS = 65536
const CHUNKS = 20

async function wipedCluster(t: Test, overrides: Record<string, unknown> = {}) {
  const c = await TestCluster.start(t, { shards: 3, chunkSize: CS, overrides })
  const body = randomBody(CHUNKS * CS)
  const put = await c.ingest('film', body)
  t.equal(put.status, 201)
  const before = replicas(c)
  await c.stopShard(1)
  await c.startShard(1, { wipe: true })
  await c.router.cluster.health.checkAll()
  const missing = before.size - replicas(c).size
  t.equal(missing, CHUNKS, 'the wiped shard held a copy of every chunk')
  return { c, body, before }
}

function floorSecs(bytes: number, rateMBps: number): number {
  const rate = rateMBps * 1e6
  return (bytes - rate) / rate
}

t.test('router.repair.rateMBps paces a repair pass', async t => {
  const rateMBps = 0.25
  const { c, body, before } = await wipedCluster(t, { 'router.repair.rateMBps': rateMBps })
  const t0 = performance.now()
  const res = await request(`${c.url}/v1/cluster/repair`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  const r = await res.body.json() as RepairReport
  const secs = (performance.now() - t0) / 1000
  t.equal(res.statusCode, 200)
  t.equal(r.chunks.copied, CHUNKS)
  t.equal(r.bytesCopied, CHUNKS * CS, 'every missing byte was copied')
  const floor = floorSecs(r.bytesCopied, rateMBps)
  t.comment(`repair copied ${(r.bytesCopied / 1e6).toFixed(2)} MB in ${secs.toFixed(2)} s at ${rateMBps} MB/s (floor ${floor.toFixed(2)} s)`)
  t.ok(floor > 3, 'the test copies enough for the bound to mean something')
  t.ok(secs >= floor - 0.05, `the pass took ${secs.toFixed(2)} s, not less than ${floor.toFixed(2)} s`)
  t.same([...replicas(c)].sort(), [...before].sort(), 'every copy is back')
  t.ok((await c.get('/v1/content/film')).body.equals(body))
})

t.test('`reelcdn router repair --rate` prints progress with counts, then a summary, and honours the rate', async t => {
  const rateMBps = 0.25
  const { c, before } = await wipedCluster(t)
  const cfg = join(c.dir, 'repair.json')
  await writeFile(cfg, JSON.stringify({ cluster: c.config().cluster, log: { level: 'warn' } }))
  const t0 = performance.now()
  const run = await new Promise<{ code: number; out: string; err: string }>(resolve =>
    execFile(process.execPath, [CLI, 'router', 'repair', '-c', cfg, '--rate', String(rateMBps)],
      { timeout: 60_000, env: { ...process.env, REELCDN_SHARD_TOKEN: '' } },
      (err, out, e) => resolve({ code: err ? Number(err.code ?? 1) : 0, out, err: e })))
  const secs = (performance.now() - t0) / 1000
  t.equal(run.code, 0, run.err)
  const report = JSON.parse(run.out) as RepairReport
  t.equal(report.chunks.copied, CHUNKS, 'the JSON report on stdout')
  t.equal(report.bytesCopied, CHUNKS * CS)
  const floor = floorSecs(report.bytesCopied, rateMBps)
  t.ok(secs >= floor, `--rate ${rateMBps}: ${secs.toFixed(2)} s, not less than ${floor.toFixed(2)} s`)
  t.same([...replicas(c)].sort(), [...before].sort(), 'every copy is back')

  // stderr is not a terminal here: plain lines, one every 2 s and one at the end
  const lines = run.err.trim().split('\n')
  t.comment(lines.join('\n'))
  const progress = lines.slice(0, -1).filter(l => /^repair \d+ .*(manifests|chunks|done): checked \d+.*, copied \d+ \(\d+ MB\), deleted \d+/.test(l))
  t.ok(progress.length >= 1, 'a progress line with the keys checked, copies made and deleted, before the end')
  for (const l of progress) {
    const est = /checked \d+ of ~(\d+)/.exec(l)
    if (est) t.equal(Number(est[1]), CHUNKS, `the estimate of chunks to check counts the wiped shard's: ${l}`)
  }
  const last = lines[lines.length - 1]!
  const m = /^repair \d+ .*done: checked (\d+) chunks and (\d+) manifests, copied (\d+) \(([\d.]+) MB\), deleted (\d+); left under-replicated (\d+), lost (\d+)/.exec(last)
  t.ok(m, `a final summary line: ${last}`)
  if (m) {
    t.equal(Number(m[1]), report.chunks.scanned, 'chunks checked')
    t.equal(Number(m[1]), CHUNKS)
    t.equal(Number(m[2]), 1, 'manifests checked')
    t.equal(Number(m[3]), CHUNKS + report.manifests.copied, 'copies made: chunks and the manifest')
    t.equal(Number(m[4]), Number((CHUNKS * CS / 1e6).toFixed(1)))
    t.equal(Number(m[5]), 0, 'nothing deleted')
    t.equal(Number(m[6]), 0, 'nothing left under-replicated')
    t.equal(Number(m[7]), 0)
  }
})
