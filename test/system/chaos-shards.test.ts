import t from 'tap'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { loadConfig } from '../../lib/config/config.js'
import { quietLogger } from '../../lib/logger.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { startRouter } from '../../router/main.js'
import { sha256Hex } from '../../router/cluster/keys.js'
import { playersMode, type Scenario } from '../../tools/loadtest/players-mode.js'
import { spawnCli, exited, type Spawned } from '../helpers/spawn.js'
import { startCheckingProxy } from '../helpers/checking-proxy.js'
import { until } from './harness.js'
import { randomBytes } from 'node:crypto'

/**
 * Shards die for real under a player load from the load tester: three
 * `reelcdn origin` child processes, a router in this process (copies=3), and
 * `reelcdn loadtest players` (its playersMode, called in-process) playing the
 * titles through the router. Between the players and the router a checking
 * proxy (test/helpers/checking-proxy.ts) compares every byte with the source
 * and counts each router answer, so a read the player client retried still
 * counts as failed. One shard gets kill -9, then a second: every read still
 * succeeds and equals the source. The shards come back (one with its disk
 * wiped, as after a replacement), a repair pass runs, and every chunk and
 * manifest is on all three again.
 */
const CS = 64 * 1024
const TOKEN = 'chaos-admin'

interface Shard { port: number; dir: string; proc: Spawned }

/**
 * Short sessions of small titles, so sessions keep starting: each plays a whole
 * title at 1 MB/s of media, reading it in one range request (the player's
 * fetches are up to 1 MiB), and one in three or so seeks, reading again from
 * there. The buffer, 1.2 MB, is over a fetch plus a 50 ms tick: at 1 MiB or less,
 * the sequential reader waits for an empty buffer before its next fetch while
 * the player waits for a tick's worth of bytes, and the session stalls until
 * `durationS`. About four arrivals a second, 3 MB/s in all: well under what the
 * player client's 8 connections carry on a loaded 2-core machine, so sessions
 * end and do not pile up. Arrivals go on until the test aborts the run's
 * `signal` after the last phase; `durationS` bounds the run anyway.
 */
const scenario: Scenario = {
  name: 'chaos-shards', players: 100_000, arrivalS: 0.25, zipf: 0.5, bitrates: [{ bps: 8_000_000, weight: 1 }],
  startupS: 0.1, bufferS: 1.2, sessionS: 3, completeShare: 1, meanWatchedShare: 1, seekChance: 0.02, premiereShare: 0,
}

t.test('kill -9 one shard then a second under load: no failed or wrong read; restart and repair: full replication', async t => {
  const base = t.testdir()
  const startShard = async (i: number, port = 0): Promise<Shard> => {
    const dir = join(base, `shard-${i + 1}`)
    mkdirSync(dir, { recursive: true })
    const proc = await spawnCli(t, ['origin', '--port', String(port), '--data-dir', dir, '--chunk-size', String(CS), '--reserve', '0',
      '--scrub-rate', '0', '--memory-cache', '0', '--insecure-open-writes'], 'origin shard ready')
    return { port: Number(new URL(String(proc.line.url)).port), dir, proc }
  }
  const shards = [await startShard(0), await startShard(1), await startShard(2)]
  const config = loadConfig({ env: {}, overrides: {
    'log.level': 'silent', 'http.shutdownGraceMs': 0,
    'cluster.chunkSize': CS, 'cluster.copies': 3,
    'cluster.shards': shards.map((s, i) => ({ id: `shard-${i + 1}`, url: `http://127.0.0.1:${s.port}`, weight: 1 })),
    'router.port': 0, 'router.dataDir': join(base, 'router'), 'router.health.intervalMs': 100, 'router.health.timeoutMs': 500, 'router.health.fall': 1, 'router.health.rise': 1,
    'router.repair.intervalMs': 0, 'router.repair.rateMBps': 0, 'router.manifestTtlMs': 60_000, 'router.catalogRefreshMs': 3600_000,
    'router.upstream.connectTimeoutMs': 500, 'router.upstream.headersTimeoutMs': 2000, 'router.upstream.bodyTimeoutMs': 2000,
  } as never })
  const router = await startRouter(config, { logger: quietLogger('router'), env: { REELCDN_ROUTER_TOKEN: TOKEN } })
  t.teardown(() => router.close())
  await router.cluster.health.checkAll()

  const titles = new Map<string, Buffer>()
  for (let i = 0; i < 3; i++) {
    const body = randomBytes(12 * CS + 1000 * i)
    const res = await request(`${router.url}/v1/content/chaos-${i}`, { method: 'PUT', body,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-digest': digestHeader(sha256Hex(body)) } })
    await res.body.dump()
    t.equal(res.statusCode, 201, `chaos-${i} ingested`)
    titles.set(`chaos-${i}`, body)
  }

  // the load: the load tester's players, reading through the checking proxy
  const proxy = await startCheckingProxy(router.url, id => titles.get(id))
  t.teardown(() => proxy.close())
  const stop = new AbortController()
  const run = playersMode({
    scenario, seed: 7, speed: 1, durationS: 90, signal: stop.signal,
    titles: [...titles].map(([contentId, body]) => ({ contentId, size: body.length })),
    // as `reelcdn loadtest players --target`: the title's URL on the target, here the proxy in front of the router
    play: async id => ({ contentId: id, urls: [{ url: `${proxy.url}/v1/content/${id}` }] }),
  })
  // a phase lasts until the players have read `mb` MB and made `n` reads in it (the old loop's 60/150/150 reads of 96 KB on average)
  const readsAfter = async (n: number, mb: number, what: string) => {
    const at = proxy.answered()
    const bytes = proxy.stats.bytes
    await until(() => proxy.answered() >= at + n && proxy.stats.bytes >= bytes + mb * 1e6, what, 30_000)
  }
  const phases: number[] = []
  let result
  try {
    await readsAfter(15, 6, 'reads with three shards')
    phases.push(proxy.answered())
    shards[0]!.proc.child.kill('SIGKILL')
    await exited(shards[0]!.proc.child)
    await readsAfter(30, 14, 'reads with shard-1 killed')
    phases.push(proxy.answered())
    shards[1]!.proc.child.kill('SIGKILL')
    await exited(shards[1]!.proc.child)
    await readsAfter(30, 14, 'reads with shard-1 and shard-2 killed')
  } finally {
    stop.abort() // the phases are done: the run ends now, its players closing within graceMs
    result = await run
  }
  const p = proxy.stats
  t.comment(`${p.reads} player reads (${(p.bytes / 1e6).toFixed(1)} MB) through two kill -9s (${phases.join(', ')} at the kills), ${result.players!.sessions} sessions, ${p.aborted} hung up`)
  const why = (kind: string) => p.errors.filter(e => e.startsWith(kind)).join('; ')
  t.equal(p.failed, 0, `no failed read ${why('failed')}`)
  t.equal(p.wrong, 0, `no wrong byte ${why('wrong')}`)
  t.equal(result.players!.failed, 0, 'no failed session')
  t.ok(result.players!.sessions >= 10, `${result.players!.sessions} sessions played`)
  t.ok(result.players!.bytes > 0, 'the players played bytes')

  // back: shard-1 as it was, shard-2 with a new empty disk
  rmSync(shards[1]!.dir, { recursive: true, force: true })
  shards[0] = await startShard(0, shards[0]!.port)
  shards[1] = await startShard(1, shards[1]!.port)
  await router.cluster.health.checkAll()
  const report = await router.repairer.run()
  t.comment(`repair: ${JSON.stringify(report).slice(0, 300)}`)
  const expected = [...titles.values()].reduce((n, b) => n + Math.ceil(b.length / CS), 0)
  for (const s of shards) {
    const r = await request(`http://127.0.0.1:${s.port}/v1/chunks?limit=1000`)
    const { chunks } = await r.body.json() as { chunks: { state: string }[] }
    t.equal(chunks.filter(c => c.state === 'ok').length, expected, `port ${s.port}: all ${expected} chunks, verified`)
    const m = await request(`http://127.0.0.1:${s.port}/v1/manifests?limit=1000`)
    t.equal(((await m.body.json()) as { manifests: unknown[] }).manifests.length, titles.size, `port ${s.port}: every manifest`)
  }
  const again = await router.repairer.run({ dryRun: true })
  t.match(again, { unreachable: [], chunks: { underReplicated: 0, lost: 0 }, manifests: { underReplicated: 0 }, remaining: { underReplicated: 0, lost: 0 } }, 'a second pass finds nothing to do')
  for (const s of shards) s.proc.child.kill('SIGTERM')
  await Promise.all(shards.map(s => exited(s.proc.child)))
})
