import t from 'tap'
import { writeFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, until } from '../helpers/edge.js'
import { spawnEdge } from '../helpers/edge-process.js'

/**
 * The disk tier survives kill -9: a real `reelcdn edge` process is killed by
 * PID while fills are in flight, then restarted on the same data directory.
 * Chunks stored before are hits again, the cut fills are fetched afresh, and
 * every byte served equals the source.
 */
const CS = 256 * 1024
const CHUNKS = 8

t.test('kill -9 during fills, restart: earlier chunks are hits and every byte equals the source', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CHUNKS * CS, 'restart')
  await up.addTitle('r1', bytes, { chunkSize: CS })
  const dir = t.testdir()
  const args = ['--upstream', up.url, '--data-dir', dir, '--ram', '1MiB', '--disk', '64MiB', '--readahead', '0']
  const chunk = (i: number) => ({ range: `bytes=${i * CS}-${(i + 1) * CS - 1}` })

  const first = await spawnEdge(t, args)
  for (let i = 0; i < 4; i++) {
    const r = await get(`${first.url}/v1/content/r1`, chunk(i))
    t.ok(r.status === 206 && r.body.equals(bytes.subarray(i * CS, (i + 1) * CS)), `chunk ${i} served`)
  }
  await until(async () => (await metric(first.url, 'reelcdn_edge_tier_chunks', { tier: 'disk' })) === 4, 'four chunks on disk')
  up.hold('r1', 4, 128 * 1024)
  up.hold('r1', 5, 64 * 1024)
  const cut = [4, 5].map(i => get(`${first.url}/v1/content/r1`, chunk(i)).catch(err => err as Error))
  await Promise.all([up.held('r1', 4), up.held('r1', 5)])
  first.child.kill('SIGKILL')
  t.same(await first.exited, { code: null, signal: 'SIGKILL' })
  for (const r of await Promise.all(cut)) t.ok(r instanceof Error, 'players of the cut fills see an error, not a short 206')
  up.release('r1', 4)
  up.release('r1', 5)
  writeFileSync(join(dir, 'tmp', 'crash-leftover.part'), Buffer.alloc(1000)) // as a write cut by the kill would leave

  const second = await spawnEdge(t, args)
  t.equal(await metric(second.url, 'reelcdn_edge_recovery_actions_total', { action: 'loaded' }), 4)
  t.equal(await metric(second.url, 'reelcdn_edge_recovery_actions_total', { action: 'tmp_removed' }), 1)
  t.same(readdirSync(join(dir, 'tmp')), [], 'partial files discarded')
  for (let i = 0; i < 4; i++) {
    const r = await get(`${second.url}/v1/content/r1`, chunk(i))
    t.ok(r.status === 206 && r.body.equals(bytes.subarray(i * CS, (i + 1) * CS)), `chunk ${i} byte-exact after the restart`)
    t.equal(up.requests('r1', i), 1, `chunk ${i} was not fetched again`)
  }
  t.equal(await metric(second.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' }), 4, 'all four are disk hits')
  const whole = await get(`${second.url}/v1/content/r1`)
  t.ok(whole.status === 200 && whole.body.equals(bytes), 'the whole title, cut chunks refetched, equals the source')
  t.equal(up.requests('r1', 4), 2)
  const rss = await metric(second.url, 'process_resident_memory_bytes')
  t.comment(`edge RSS after serving: ${(rss / 1024 ** 2).toFixed(0)} MiB (RAM tier 1 MiB)`)

  second.child.kill('SIGTERM')
  t.same(await second.exited, { code: 0, signal: null }, 'SIGTERM: a graceful exit')
})
