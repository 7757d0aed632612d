import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get } from '../helpers/edge.js'
import { spawnEdge, watchLog } from '../helpers/edge-process.js'

/**
 * `reelcdn edge --supervise` (edge/run/supervisor.ts): an upgrade whose new
 * worker cannot start (its config no longer loads) is abandoned before the
 * running worker is asked to release anything: it goes on serving.
 */
const CS = 256 * 1024

t.test('SIGUSR2 with a config that no longer loads: the new worker exits, the upgrade is abandoned, the running worker serves on', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(2 * CS, 'refused')
  await up.addTitle('u1', bytes, { chunkSize: CS })
  const dir = t.testdir({ 'edge.json': JSON.stringify({ edge: { ramBytes: 8 * CS, diskBytes: 64 * CS, prefill: { window: 'never' } } }) })
  const sup = await spawnEdge(t, ['--supervise', '-c', join(dir, 'edge.json'), '--upstream', up.url, '--data-dir', join(dir, 'data')])
  const log = watchLog<{ msg?: string }>(sup.child)
  // the workers are in their own process groups: stopped through the supervisor, which waits for them
  t.teardown(async () => {
    if (sup.child.exitCode === null) sup.child.kill('SIGTERM')
    await sup.exited
  })
  t.equal((await get(`${sup.url}/v1/content/u1`)).status, 200, 'served before')

  writeFileSync(join(dir, 'edge.json'), '{ "edge": { "ramBytes": -1 } }')
  const abandoned = log.next('edge supervisor: upgrade abandoned')
  sup.child.kill('SIGUSR2')
  await abandoned
  const after = await get(`${sup.url}/v1/content/u1`, { range: 'bytes=0-99' })
  t.ok(after.status === 206 && after.body.equals(bytes.subarray(0, 100)), 'the running worker still serves')
  t.equal(sup.child.exitCode, null, 'the supervisor still runs')
})
