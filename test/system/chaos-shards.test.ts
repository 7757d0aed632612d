import t from 'tap'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { loadConfig } from '../../lib/config.js'
import { quietLogger } from '../../lib/logger.js'
import { digestHeader } from '../../lib/digest.js'
import { startRouter } from '../../router/main.js'
import { sha256Hex } from '../../router/keys.js'
import { PlayerClient } from '../../client/player.js'
import { mulberry32 } from '../../tools/loadtest/random.js'
import { spawnCli, exited, type Spawned } from '../helpers/spawn.js'
import { until } from './harness.js'
import { randomBytes } from 'node:crypto'

/**
 * Shards die for real under a player load: three `reelcdn origin` child
 * processes, a router in this process (copies=3), and players reading random
 * ranges through the router with the player client, one request per read (no
 * client-side retry: a read the router fails is a failed read). One shard gets
 * kill -9, then a second: every read still succeeds and equals the source. The
 * shards come back (one with its disk wiped, as after a replacement), a repair
 * pass runs, and every chunk and manifest is on all three again.
 */
const CS = 64 * 1024
const TOKEN = 'chaos-admin'

interface Shard { port: number; dir: string; proc: Spawned }

t.test('kill -9 one shard then a second under load: no failed or wrong read; restart and repair: full replication', async t => {
  const base = t.testdir()
  const startShard = async (i: number, port = 0): Promise<Shard> => {
    const dir = join(base, `shard-${i + 1}`)
    mkdirSync(dir, { recursive: true })
    const proc = await spawnCli(t, ['origin', '--port', String(port), '--data-dir', dir, '--chunk-size', String(CS), '--reserve', '0',
      '--scrub-rate', '0', '--memory-cache', '0'], 'origin shard ready')
    return { port: Number(new URL(String(proc.line.url)).port), dir, proc }
  }
  const shards = [await startShard(0), await startShard(1), await startShard(2)]
  const config = loadConfig({ env: {}, overrides: {
    'log.level': 'silent', 'http.shutdownGraceMs': 0,
    'cluster.chunkSize': CS, 'cluster.copies': 3,
    'cluster.shards': shards.map((s, i) => ({ id: `shard-${i + 1}`, url: `http://127.0.0.1:${s.port}`, weight: 1 })),
    'router.port': 0, 'router.health.intervalMs': 100, 'router.health.timeoutMs': 500, 'router.health.fall': 1, 'router.health.rise': 1,
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

  // the load: players reading random ranges, checking every byte
  const stats = { reads: 0, failed: 0, wrong: 0, errors: [] as string[] }
  let stop = false
  const player = async (seed: number) => {
    const rng = mulberry32(seed)
    while (!stop) {
      const id = `chaos-${Math.floor(rng() * 3)}`
      const want = titles.get(id)!
      try {
        const p = await PlayerClient.open({ contentId: id, urls: [{ url: `${router.url}/v1/content/${id}` }] }, { maxAttempts: 1, timeoutMs: 5000 })
        for (let k = 0; k < 4 && !stop; k++) {
          const off = Math.floor(rng() * want.length)
          const len = 1 + Math.floor(rng() * 3 * CS)
          const got = await p.read(off, len)
          stats.reads++
          if (!got.equals(want.subarray(off, off + len))) stats.wrong++
        }
      } catch (err) {
        stats.failed++
        if (stats.errors.length < 5) stats.errors.push((err as Error).message)
      }
    }
  }
  const players = Array.from({ length: 6 }, (_, i) => player(i + 1))
  const readsAfter = async (n: number, what: string) => { const at = stats.reads; await until(() => stats.reads >= at + n, what, 30_000) }
  try {
    await readsAfter(60, 'reads with three shards')
    shards[0]!.proc.child.kill('SIGKILL')
    await exited(shards[0]!.proc.child)
    await readsAfter(150, 'reads with shard-1 killed')
    shards[1]!.proc.child.kill('SIGKILL')
    await exited(shards[1]!.proc.child)
    await readsAfter(150, 'reads with shard-1 and shard-2 killed')
  } finally {
    stop = true
    await Promise.all(players)
  }
  t.comment(`${stats.reads} player reads through two kill -9s`)
  t.equal(stats.failed, 0, `no failed read${stats.errors.length ? ': ' + stats.errors.join('; ') : ''}`)
  t.equal(stats.wrong, 0, 'no wrong byte')

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
