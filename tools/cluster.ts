import { Command } from 'commander'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { addFlags, commonFlags, configFromFlags, runUntilSignalled, type Flag } from '../lib/cli.js'
import type { Config } from '../lib/config.js'
import { createLogger } from '../lib/logger.js'
import { startOrigin } from '../origin/main.js'
import { startRouter } from '../router/main.js'
import { startEdge } from '../edge/main.js'
import { ensureSample } from './sample.js'

/**
 * `reelcdn cluster`: a whole cluster on one machine, in one process, for
 * trying things and for `make run`. Every shard of cluster.shards listens on
 * its URL's host and port with its data in <local.dataDir>/<shard id>, then
 * the router starts on router.host:router.port, then one edge on
 * edge.host:edge.port filling from that router, its cache in
 * <local.dataDir>/edge. With an empty catalog a sample title is ingested.
 * One Ctrl-C closes them all, in reverse order.
 *
 * Members are a list so more services can join: append one to `members()`
 * (an edge, say) and it is started after the ones it depends on.
 *
 * Secrets not configured are generated into <local.dataDir> (mode 0600) on the
 * first run and reused on later runs, so a restart keeps tokens already handed
 * out valid: the admin token (router-token), the play-token keys
 * (token-keys, `k1:<hex>`, given to the router and the edge) and the edge
 * credential (edge-token: the edge registers with the router and reports
 * demand), so `/v1/play` answers at once with the edge first. With
 * router.requireToken on, the edge's fill credential too (read-token: the
 * router's read token, the edge's upstream token).
 */
export interface Member {
  name: string
  start(): Promise<{ url: string; close(): Promise<void> }>
}

export async function members(config: Readonly<Config>, env: NodeJS.ProcessEnv): Promise<Member[]> {
  const dataDir = config.local.dataDir
  const level = config.log.level
  const out: Member[] = config.cluster.shards.map(s => {
    const u = new URL(s.url)
    const origin = { ...config.origin, host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80), dataDir: join(dataDir, s.id) }
    return { name: s.id, start: () => startOrigin({ ...config, origin }, { logger: createLogger('origin', level).child({ shard: s.id }), env }) }
  })
  const router = { ...config.router }
  const edge = { ...config.edge }
  if (!env.REELCDN_ROUTER_TOKEN && !router.tokenFile)
    router.tokenFile = await ensureSecret(join(dataDir, 'router-token'), () => randomBytes(24).toString('hex'))
  if (!env.REELCDN_TOKEN_KEYS && !router.tokenKeysFile && !edge.tokenKeysFile)
    router.tokenKeysFile = edge.tokenKeysFile = await ensureSecret(join(dataDir, 'token-keys'), () => `k1:${randomBytes(32).toString('hex')}`)
  if (!env.REELCDN_EDGE_TOKEN && !router.edgeTokenFile && !edge.edgeTokenFile)
    router.edgeTokenFile = edge.edgeTokenFile = await ensureSecret(join(dataDir, 'edge-token'), () => randomBytes(24).toString('hex'))
  // a router requiring play tokens lets edges fill only with the read (or admin) token: give the edge one
  if (router.requireToken && !env.REELCDN_ROUTER_READ_TOKEN && !router.readTokenFile && !env.REELCDN_EDGE_UPSTREAM_TOKEN && !edge.upstreamTokenFile)
    router.readTokenFile = edge.upstreamTokenFile = await ensureSecret(join(dataDir, 'read-token'), () => randomBytes(24).toString('hex'))
  out.push({ name: 'router', start: () => startRouter({ ...config, router }, { logger: createLogger('router', level), env }) })
  const routerUrl = `http://${config.router.host.includes(':') ? `[${config.router.host}]` : config.router.host}:${config.router.port}`
  Object.assign(edge, { upstream: routerUrl, dataDir: join(dataDir, 'edge') })
  out.push({ name: 'edge', start: () => startEdge({ ...config, edge }, { logger: createLogger('edge', level), env }) })
  return out
}

/** The secret in `file`, written by `make()` (mode 0600) when the file is missing or empty. Returns the file. */
export async function ensureSecret(file: string, make: () => string): Promise<string> {
  await mkdir(dirname(file), { recursive: true })
  const have = await readFile(file, 'utf8').catch(() => '')
  if (!have.trim()) await writeFile(file, make() + '\n', { mode: 0o600 })
  return file
}

export async function startCluster(config: Readonly<Config>, env: NodeJS.ProcessEnv = process.env) {
  const started: { name: string; url: string; close(): Promise<void> }[] = []
  const close = async () => {
    for (const m of started.reverse()) await m.close().catch(() => {})
  }
  try {
    for (const m of await members(config, env)) started.push({ name: m.name, ...(await m.start()) })
  } catch (err) {
    await close()
    throw err
  }
  const tokenFile = config.router.tokenFile || join(config.local.dataDir, 'router-token')
  const router = started.find(m => m.name === 'router')!.url
  const edge = started.find(m => m.name === 'edge')!.url
  let sample: string | undefined
  try {
    sample = await ensureSample(router, config.local.dataDir, env)
  } catch (err) {
    process.stderr.write(`could not ingest the sample title: ${(err as Error).message}\n`)
  }
  const hint = env.REELCDN_ROUTER_TOKEN ? 'admin token: from REELCDN_ROUTER_TOKEN\ningest: node dist/cli.js ingest FILE --id my-title'
    : `admin token: in ${tokenFile}\ningest: REELCDN_ROUTER_TOKEN=$(cat ${tokenFile}) node dist/cli.js ingest FILE --id my-title`
  const steer = sample ? `\nask the router where to play ${sample} (ranked URLs, each with a signed token; the edge first):\n` +
    `  curl ${router}/v1/play/${sample}\n` +
    `  curl -o /dev/null -w '%{http_code} %{size_download} bytes\\n' -H 'range: bytes=0-1048575' "$(curl -s ${router}/v1/play/${sample} | node -pe 'JSON.parse(require("fs").readFileSync(0)).urls[0].url')"\n` : ''
  const play = sample ? `\nplay ${sample} through the edge:\n  curl -o /dev/null -w '%{http_code} %{size_download} bytes\\n' -H 'range: bytes=0-1048575' ${edge}/v1/content/${sample}\n` +
    `  in a browser: ${edge}/v1/content/${sample}\n  ffplay ${edge}/v1/content/${sample}\n` : ''
  process.stderr.write(`\nreelcdn cluster is up:\n${started.map(m => `  ${m.name.padEnd(10)} ${m.url}`).join('\n')}\n${play}${steer}${hint}\nCtrl-C stops everything.\n\n`)
  return { members: started.map(m => ({ name: m.name, url: m.url })), close }
}

const flags: Flag[] = [
  { flags: '-d, --data-dir <dir>', path: 'local.dataDir', kind: 'string', description: 'where every member keeps its data, one directory each' },
  { flags: '--copies <n>', path: 'cluster.copies', kind: 'int', description: 'replicas of every chunk and manifest' },
  { flags: '--chunk-size <bytes>', path: 'cluster.chunkSize', kind: 'bytes', description: 'the cluster-wide chunk size' },
  ...commonFlags,
]

export function clusterCommand(): Command {
  const cmd = new Command('cluster')
    .summary('run a local cluster (every shard of cluster.shards, a router and an edge) in one process')
    .description('Start every shard listed in cluster.shards (data in <data-dir>/<shard id>), a router and an edge, on the ' +
      'addresses the config names (by default shards at 127.0.0.1:7101-7103, the router at 127.0.0.1:7000 and the edge at ' +
      '127.0.0.1:8080). With an empty catalog a sample title is ingested. Ctrl-C stops everything.')
  addFlags(cmd, flags)
  cmd.action(() => runUntilSignalled(() => startCluster(configFromFlags(cmd, flags))))
  return cmd
}
