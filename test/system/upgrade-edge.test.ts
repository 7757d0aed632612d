import t from 'tap'
import { join } from 'node:path'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, until } from '../helpers/edge.js'
import { spawnEdge, watchLog } from '../helpers/edge-process.js'
import { rangePlayers } from '../helpers/range-players.js'
import { readFileSync } from 'node:fs'

/**
 * `reelcdn edge --supervise` (edge/run/supervisor.ts): SIGUSR2 replaces the
 * worker process under a bounded load of range reads whose every byte is
 * checked. No read fails; the new worker serves from the disk tier it took
 * over (no upstream fill after the upgrade) and has warmed its RAM tier from
 * it (upgrade-edge-refused.test.ts: a new worker that cannot start).
 */
const CS = 256 * 1024
const CHUNKS = 12

interface LogLine { msg?: string; pid?: number; chunks?: number; handoverMs?: number }

t.test('SIGUSR2 under player load: zero failed reads, the disk tier carries over, RAM is warmed again', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CHUNKS * CS, 'upgrade')
  await up.addTitle('u1', bytes, { chunkSize: CS })
  const dir = t.testdir({ 'edge.json': JSON.stringify({ edge: { ramBytes: 8 * CS, diskBytes: 64 * CS, prefill: { window: 'never' } } }) })
  const sup = await spawnEdge(t, ['--supervise', '-c', join(dir, 'edge.json'), '--upstream', up.url, '--data-dir', join(dir, 'data'), '--readahead', '0'])
  const { next } = watchLog<LogLine>(sup.child)
  // the workers are in their own process groups: stopped through the supervisor, which waits for them
  t.teardown(async () => {
    if (sup.child.exitCode === null) sup.child.kill('SIGTERM')
    await sup.exited
  })

  const whole = await get(`${sup.url}/v1/content/u1`)
  t.ok(whole.status === 200 && whole.body.equals(bytes), 'warmed: the whole title once')
  // the worker runs with huge pages for its chunk memory (lib/malloc-tunables.ts), though the supervisor was started without
  if (!/glibc\.malloc\.hugetlb=/.test(process.env.GLIBC_TUNABLES ?? '')) {
    const pid = sup.child.pid!
    const workers = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)
    t.equal(workers.length, 1, 'one worker')
    t.ok(readFileSync(`/proc/${workers[0]}/environ`, 'utf8').split('\0').includes('GLIBC_TUNABLES=glibc.malloc.hugetlb=1'),
      'the worker was started with GLIBC_TUNABLES=glibc.malloc.hugetlb=1')
  }
  await until(async () => (await metric(sup.url, 'reelcdn_edge_tier_chunks', { tier: 'disk' })) === CHUNKS, 'every chunk on disk')
  const fetched = up.requests('u1')

  const players = rangePlayers(() => `${sup.url}/v1/content/u1`, bytes, { players: 4, maxRequests: 3000, rangeBytes: 200 * 1024 })
  await players.progressed(30)
  const upgraded = next('edge supervisor: upgraded')
  const warmed = next('RAM tier warmed')
  sup.child.kill('SIGUSR2')
  const u = await upgraded
  t.comment(`handover: ${u.handoverMs} ms without a worker accepting (connections waited in the accept queue)`)
  await players.progressed(60)
  await players.stop()
  t.same(players.failures, [], `no player read failed (${players.done} reads across the upgrade)`)
  t.equal(up.requests('u1'), fetched, 'no upstream fill after the upgrade: the disk tier carried over')
  t.equal(await metric(sup.url, 'reelcdn_edge_recovery_actions_total', { action: 'loaded' }), CHUNKS, 'the new worker adopted every chunk')
  t.equal(await metric(sup.url, 'reelcdn_edge_requests_total', { result: 'miss' }), 0, 'the new worker had no miss')
  t.ok((await warmed).chunks! > 0, `the RAM tier was warmed from disk (${(await warmed).chunks} chunks)`)
})
