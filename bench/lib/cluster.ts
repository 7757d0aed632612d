import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ProcessGroup } from './proc.js'
import { CLI, startOriginProcess, startService, type RunningService, type ServiceOptions } from './reelcdn.js'

/**
 * A local origin cluster as child processes: `shards` origin shards and a
 * router with a generated config file naming them, as an operator would run
 * them on separate machines (`reelcdn cluster` would put them all in one
 * process, and then the router's RSS and CPU could not be told apart).
 * Repair passes are off: a benchmark measures serving, not background copies.
 */
export interface LocalCluster {
  shards: RunningService[]
  router: RunningService
  /** the router's admin token (generated) */
  token: string
  /** the shards' token (generated): what a direct shard read must send since shards check it on reads too */
  shardToken: string
  stop(): Promise<void>
}

export async function startCluster(procs: ProcessGroup, dir: string, o: { shards: number; copies: number; chunkSize: number; service?: ServiceOptions }): Promise<LocalCluster> {
  const shards: RunningService[] = []
  // shards take writes only with their token (issue 14): one for this cluster, given to shards and router alike
  const env = { REELCDN_SHARD_TOKEN: randomBytes(16).toString('hex'), REELCDN_LOG_REQUESTS: 'false' }
  let router: RunningService | undefined
  try {
    for (let i = 1; i <= o.shards; i++) {
      await mkdir(join(dir, `shard-${i}`), { recursive: true })
      // its id: it takes the fill grants the router signs for `shard-${i}` (docs/fill-path.md)
      // (a build from before fill grants has no --id: --cli may name one, to measure the previous build)
      const id = takesShardId(o.service?.cli ?? CLI) ? ['--id', `shard-${i}`] : []
      shards.push(await startOriginProcess(procs, join(dir, `shard-${i}`), ['--chunk-size', String(o.chunkSize), ...id], { ...o.service, env }))
    }
    const cfg = join(dir, 'router.json')
    await writeFile(cfg, JSON.stringify({
      cluster: { chunkSize: o.chunkSize, copies: o.copies, shards: shards.map((s, i) => ({ id: `shard-${i + 1}`, url: s.url, weight: 1 })) },
      router: { host: '127.0.0.1', port: 0, repair: { intervalMs: 0 }, dataDir: join(dir, 'router') },
    }, null, 2))
    const token = randomBytes(16).toString('hex')
    router = await startService(procs, 'router', 'router ready', ['-c', cfg, '--log-level', 'info'],
      { ...o.service, env: { ...env, REELCDN_ROUTER_TOKEN: token } })
    const r = router
    return { shards, router: r, token, shardToken: env.REELCDN_SHARD_TOKEN, stop: async () => { await r.stop(); await Promise.all(shards.map(s => s.stop())) } }
  } catch (err) {
    await router?.stop()
    await Promise.all(shards.map(s => s.stop()))
    throw err
  }
}

/** A /proc/<pid>/status field in bytes: VmHWM is the peak resident set since the process started. */
export async function procBytes(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`)
  return Number(m[1]) * 1024
}

const shardIdFlag = new Map<string, boolean>()

/** Whether that build's `origin` takes `--id` (fill grants, docs/fill-path.md): asked once per CLI. */
function takesShardId(cli: string): boolean {
  let v = shardIdFlag.get(cli)
  if (v === undefined) {
    v = execFileSync(process.execPath, [cli, 'origin', '--help'], { encoding: 'utf8' }).includes('--id ')
    shardIdFlag.set(cli, v)
  }
  return v
}
