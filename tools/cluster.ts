import { Command, InvalidArgumentError, Option } from 'commander'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { addFlags, commonFlags, configFromFlags, runUntilSignalled, type Flag } from '../lib/cli.js'
import type { Config } from '../lib/config/config.js'
import { ensureSample } from './sample.js'
import { members, withBasePort, type Member } from './cluster-members.js'

export { ensureSecret, members, type Member } from './cluster-members.js'

/**
 * `reelcdn cluster`: a whole cluster on one machine, in one process, for
 * trying things and for `make run`. tools/cluster-members.ts says who runs
 * where with which secrets; this file starts them in order, writes the
 * cluster's effective config to <local.dataDir>/cluster.json, ingests a sample
 * title into an empty catalog and prints how to try it. One Ctrl-C closes them
 * all, in reverse order.
 *
 * cluster.json is what every other subcommand takes with --config to reach
 * this cluster: the router's address and token files (ingest, token, router
 * repair, loadtest), the shards with their real ports and their token (router
 * repair), the edge's address and data dir (edge report, loadtest). It holds
 * file names, never a secret. Its origin section is the first shard's; the
 * others differ by host, port and data dir, as cluster.shards lists.
 */
export interface StartOptions {
  /** ingest a sample title into an empty catalog (default true) */
  sample?: boolean
}

export interface RunningCluster {
  members: { name: string; url: string; config: Readonly<Config> }[]
  /** <local.dataDir>/cluster.json */
  configFile: string
  close(): Promise<void>
}

export async function startCluster(config: Readonly<Config>, env: NodeJS.ProcessEnv = process.env, opts: StartOptions = {}): Promise<RunningCluster> {
  const started: { m: Member; url: string; close(): Promise<void> }[] = []
  const close = async () => {
    for (const s of started.reverse()) await s.close().catch(() => {})
  }
  const all = await members(config, env)
  const configFile = join(all.find(m => m.name === 'router')!.config.local.dataDir, 'cluster.json')
  // nothing would stop what started if a step failed: it is closed, so the command ends with its error
  try {
    for (const m of all) started.push({ m, ...(await m.start()) })
    await writeFile(configFile, JSON.stringify(effectiveConfig(all), null, 2) + '\n').catch((err: Error) => {
      throw new Error(`could not write the cluster's config file ${configFile}: ${err.message}`)
    })
  } catch (err) {
    await close()
    throw err
  }
  const router = started.find(s => s.m.name === 'router')!
  const edge = started.find(s => s.m.name === 'edge')!
  let sample: string | undefined
  let adaptive: string | undefined
  if (opts.sample !== false) {
    try {
      ({ single: sample, adaptive } = await ensureSample(router.url, router.m.config, env))
    } catch (err) {
      process.stderr.write(`could not ingest the sample title: ${(err as Error).message}\n`)
    }
  }
  process.stderr.write(hints(started.map(s => ({ name: s.m.name, url: s.url })), router.url, edge.url, configFile, edge.m.config, sample, adaptive, env))
  return { members: started.map(s => ({ name: s.m.name, url: s.url, config: s.m.config })), configFile, close }
}

/** One config for the whole cluster: the router's (with the shards' real urls), the edge's section, the first shard's. */
function effectiveConfig(all: Member[]): Readonly<Config> {
  const router = all.find(m => m.name === 'router')!.config
  const edge = all.find(m => m.name === 'edge')!.config
  return { ...router, edge: edge.edge, origin: all[0]!.config.origin }
}

function hints(up: { name: string; url: string }[], router: string, edge: string, configFile: string, ec: Readonly<Config>,
  sample: string | undefined, adaptive: string | undefined, env: NodeJS.ProcessEnv): string {
  const cfg = `--config ${configFile}`
  const steer = sample ? `\nask the router where to play ${sample} (ranked URLs, each with a signed token; the edge first):\n` +
    `  curl ${router}/v1/play/${sample}\n` +
    `  curl -o /dev/null -w '%{http_code} %{size_download} bytes\\n' -H 'range: bytes=0-1048575' "$(curl -s ${router}/v1/play/${sample} | node -pe 'JSON.parse(require("fs").readFileSync(0)).urls[0].url')"\n` : ''
  const play = sample ? `\nplay ${sample} through the edge:\n  curl -o /dev/null -w '%{http_code} %{size_download} bytes\\n' -H 'range: bytes=0-1048575' ${edge}/v1/content/${sample}\n` +
    `  in a browser: ${edge}/v1/content/${sample}\n  ffplay ${edge}/v1/content/${sample}\n` : ''
  const abr = adaptive ? `\nwatch ${adaptive} (adaptive: HLS and DASH, three rungs up to 480p) in a browser:\n  ${edge}/watch/${adaptive}\n` +
    `its HLS master playlist (DASH: manifest.mpd beside it):\n  ${edge}/v1/content/${adaptive}/master.m3u8\n  ffplay ${edge}/v1/content/${adaptive}/master.m3u8\n` : ''
  const admin = env.REELCDN_EDGE_ADMIN_TOKEN ? 'from REELCDN_EDGE_ADMIN_TOKEN' : `in ${ec.edge.adminTokenFile}`
  return `\nreelcdn cluster is up:\n${up.map(m => `  ${m.name.padEnd(10)} ${m.url}`).join('\n')}\n${abr}${play}${steer}` +
    `\nthis cluster's config, for every other subcommand: ${configFile}\n` +
    `  ingest:  node dist/cli.js ingest FILE --id my-title ${cfg}\n` +
    `  adaptive: node dist/cli.js ingest FILE --id my-title --renditions default ${cfg}\n` +
    `  repair:  node dist/cli.js router repair ${cfg}\n` +
    `  viewer:  node dist/cli.js token viewer alice ${cfg}\n` +
    `the edge's admin token (purge, cache status, prefill) is ${admin}\nCtrl-C stops everything.\n\n`
}

const flags: Flag[] = [
  { flags: '-d, --data-dir <dir>', path: 'local.dataDir', kind: 'string', description: 'where every member keeps its data, one directory each, and where cluster.json and generated secrets go' },
  { flags: '--copies <n>', path: 'cluster.copies', kind: 'int', description: 'replicas of every chunk and manifest' },
  { flags: '--chunk-size <bytes>', path: 'cluster.chunkSize', kind: 'bytes', description: 'the cluster-wide chunk size' },
  ...commonFlags,
]

function basePort(v: string): number {
  const n = Number(v)
  if (!/^[0-9]+$/.test(v) || n < 1024 || n > 65535 - 1080) throw new InvalidArgumentError(`expected a port from 1024 to ${65535 - 1080}.`)
  return n
}

export function clusterCommand(): Command {
  const cmd = new Command('cluster')
    .summary('run a local cluster (every shard of cluster.shards, a router and an edge) in one process')
    .description('Start every shard listed in cluster.shards (data in <data-dir>/<shard id>), a router (state in <data-dir>/router) ' +
      'and an edge (cache in <data-dir>/edge), on the addresses the config names (by default shards at 127.0.0.1:7101-7103, the ' +
      'router at 127.0.0.1:7000 and the edge at 127.0.0.1:8080) or from --base-port. Secrets not configured are generated into ' +
      '<data-dir> (mode 0600), and the effective config is written to <data-dir>/cluster.json: give it to other subcommands ' +
      'with --config. With an empty catalog a sample title is ingested. Ctrl-C stops everything.')
  addFlags(cmd, flags)
  cmd.addOption(new Option('--base-port <port>', 'move every member: the router at PORT, shard i at PORT+100+i, the edge at PORT+1080 ' +
    '(default: none, the config\'s ports; 7000 is the default layout)').argParser(basePort))
  cmd.action(() => runUntilSignalled(() => {
    const config = configFromFlags(cmd, flags)
    const base = cmd.opts<{ basePort?: number }>().basePort
    return startCluster(base === undefined ? config : withBasePort(config, base))
  }))
  return cmd
}
