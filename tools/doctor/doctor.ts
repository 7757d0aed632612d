import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig, type Config } from '../../lib/config/config.js'
import { fail, ok, warn, type Finding } from './finding.js'
import { checkDataDir, checkSpace, bytesUnder } from './storage.js'
import { checkSecret, checkTls, type SecretNeed } from './secrets.js'
import { checkClock, checkFfmpeg, checkHugePages, checkListen, checkOpenFiles, checkSkew, openFileLimit, probeClock, thpMode, type ClockProbe, type FdNeed } from './host.js'

/**
 * `reelcdn doctor <role>`: every check a role needs, in the order an operator
 * fixes things: the config (nothing else runs without it), then what the
 * service will meet at start (its port, its directory, its space, its file
 * limit, its secrets, TLS), then what it needs to work with the others
 * (ffmpeg for an ingest, the clock). The checks read; none writes anything
 * but the data dir's probe file, which the service itself writes at start.
 *
 * Each role's needs are listed here in one place (which directory, which
 * secrets, how many file descriptors), from the settings the service reads.
 */
export const ROLES = ['shard', 'router', 'edge', 'ingest'] as const
export type Role = typeof ROLES[number]

export interface DoctorOptions {
  file?: string | undefined
  env: NodeJS.ProcessEnv
  /** skip the checks that ask other machines (the peers' clocks) */
  offline?: boolean
  /** for tests: the open-file limit and clock to judge instead of this process's */
  fdLimit?: number
  clock?: ClockProbe
}

export interface Report { role: Role; config: string; findings: Finding[] }

const BUILT = fileURLToPath(new URL('../../cli.js', import.meta.url))
const MIB = 1024 ** 2, GIB = 1024 ** 3

export async function runDoctor(role: Role, o: DoctorOptions): Promise<Report> {
  const findings: Finding[] = []
  const report = { role, config: o.file ?? '(defaults)', findings }
  let config: Readonly<Config>
  try {
    config = loadConfig({ file: o.file, env: o.env })
  } catch (err) {
    findings.push(fail('config', (err as Error).message, 'fix the config file (config/default.json lists every setting with its default)'))
    return report
  }
  findings.push(ok('config', `${report.config} is valid`), ...roleRules(role, config))
  if (process.getuid?.() === 0)
    findings.push(warn('user', 'running as root, for whom every permission check passes', 'run doctor as the service\'s user: sudo -u reelcdn reelcdn doctor ...'))

  const p = plan(role, config)
  if (p.listen) findings.push(await checkListen(`${p.listen.section}.port`, p.listen.host, p.listen.port))
  findings.push(await checkDataDir(p.dir))
  findings.push(await checkSpace({ ...p.space, held: role === 'edge' ? await bytesUnder(join(config.edge.dataDir, 'chunks')) : 0 }))
  if (p.fds) findings.push(checkOpenFiles(p.fds, o.fdLimit ?? await openFileLimit()))
  if (role !== 'ingest') findings.push(checkHugePages(await thpMode(), o.env))
  for (const s of p.secrets) findings.push(checkSecret(s, o.env))
  const clock = o.clock ?? await probeClock(BUILT)
  if (role !== 'ingest') findings.push(...checkTls(config.http.tlsCertFile, config.http.tlsKeyFile, clock.now))
  if (role === 'ingest') findings.push(await checkFfmpeg(config.ingest.ffmpeg))
  findings.push(...checkClock(clock))
  if (!o.offline) {
    const grace = config.router.fillGrants.ttlMs / 2
    if (role === 'edge') findings.push(await checkSkew('the router (edge.upstream)', `${config.edge.upstream.replace(/\/+$/, '')}/healthz`, grace))
    // at once: an unreachable shard costs its 3 s timeout, not 3 s each
    if (role === 'router') findings.push(...await Promise.all(config.cluster.shards.slice(0, 8).map(s => checkSkew(s.id, `${s.url}/healthz`, grace))))
  }
  return report
}

/** What the services refuse at start beyond the schema (router/main.ts, edge/main.ts). */
function roleRules(role: Role, c: Readonly<Config>): Finding[] {
  const out: Finding[] = []
  if (role === 'edge' && c.edge.diskBytes > 0 && c.edge.diskWriteQueueBytes < c.cluster.chunkSize)
    out.push(fail('config', `edge.diskWriteQueueBytes (${c.edge.diskWriteQueueBytes}) holds less than one chunk (cluster.chunkSize ${c.cluster.chunkSize})`, 'raise edge.diskWriteQueueBytes'))
  if (role === 'router' && c.router.ingestMemoryBytes < c.cluster.chunkSize)
    out.push(fail('config', `router.ingestMemoryBytes (${c.router.ingestMemoryBytes}) holds less than one chunk (cluster.chunkSize ${c.cluster.chunkSize})`, 'raise router.ingestMemoryBytes'))
  if (role === 'router' && c.router.requireToken && !c.router.readTokenFile && !c.router.tokenFile)
    out.push(fail('config', 'router.requireToken needs a credential for the edges to fill with', 'set router.readTokenFile (or REELCDN_ROUTER_READ_TOKEN)'))
  return out
}

interface Plan {
  listen?: { section: string; host: string; port: number }
  dir: Parameters<typeof checkDataDir>[0]
  space: Parameters<typeof checkSpace>[0]
  fds?: FdNeed
  secrets: SecretNeed[]
}

function fds(parts: [string, number][]): FdNeed {
  return { total: parts.reduce((a, [, n]) => a + n, 0), parts: parts.map(([k, n]) => `${k} ${n}`).join(' + ') }
}

function plan(role: Role, c: Readonly<Config>): Plan {
  const conns: [string, number] = ['http.maxConnections', c.http.maxConnections]
  const base: [string, number] = ['SQLite, logs and Node', 64]
  switch (role) {
    case 'shard': return {
      listen: { section: 'origin', host: c.origin.host, port: c.origin.port },
      dir: { setting: 'origin.dataDir', dir: c.origin.dataDir, subdirs: ['chunks', 'tmp', 'quarantine'] },
      space: { setting: 'origin.reserveBytes', dir: c.origin.dataDir, bytes: c.origin.reserveBytes + c.cluster.chunkSize,
        short: 'the shard refuses every write (507) below its reserve', fix: 'free space, add a disk (another shard), or lower origin.reserveBytes' },
      fds: fds([conns, ['a chunk file per reading connection', c.http.maxConnections], base]),
      secrets: [{ setting: 'origin.tokenFile', file: c.origin.tokenFile, env: 'REELCDN_SHARD_TOKEN',
        without: c.origin.insecureOpenWrites ? 'anyone who reaches the shard can write and delete (origin.insecureOpenWrites)' : 'writes and deletes are refused, so the router cannot ingest or repair here' }],
    }
    case 'router': return {
      listen: { section: 'router', host: c.router.host, port: c.router.port },
      dir: { setting: 'router.dataDir', dir: c.router.dataDir, subdirs: [] },
      space: { setting: 'router.dataDir', dir: c.router.dataDir, bytes: 256 * MIB, short: 'trending and sessions (SQLite) need room',
        fix: 'free space, or move router.dataDir' },
      fds: fds([conns, [`router.upstream.connections × ${c.cluster.shards.length} shards`, c.router.upstream.connections * c.cluster.shards.length], base]),
      secrets: [
        { setting: 'router.tokenFile', file: c.router.tokenFile, env: 'REELCDN_ROUTER_TOKEN', without: 'ingest, delete and repair are refused' },
        { setting: 'router.shardTokenFile', file: c.router.shardTokenFile, env: 'REELCDN_SHARD_TOKEN', without: 'the shards refuse this router\'s writes, and no fill grants (edges use the relay)' },
        { setting: 'router.readTokenFile', file: c.router.readTokenFile, env: 'REELCDN_ROUTER_READ_TOKEN', without: 'content reads are public' },
        { setting: 'router.edgeTokenFile', file: c.router.edgeTokenFile, env: 'REELCDN_EDGE_TOKEN', without: 'edges\' heartbeats are refused, so nothing is steered to them' },
        { setting: 'router.tokenKeysFile', file: c.router.tokenKeysFile, env: 'REELCDN_TOKEN_KEYS', keys: true, required: c.router.requireToken,
          without: c.router.requireToken ? 'router.requireToken is on, and the router will not start' : '/v1/play refuses (no play tokens)' },
      ],
    }
    case 'edge': return {
      listen: { section: 'edge', host: c.edge.host, port: c.edge.port },
      dir: { setting: 'edge.dataDir', dir: c.edge.dataDir, subdirs: ['chunks', 'tmp'] },
      space: { setting: 'edge.diskBytes', dir: c.edge.dataDir, bytes: c.edge.diskBytes + c.edge.requestLogBytes * (c.edge.requestLogFiles + 1),
        short: 'the disk tier cannot fill to its size (with the request log beside it)', fix: 'lower edge.diskBytes, or give edge.dataDir a bigger disk' },
      fds: fds([conns, ['edge.openFiles', c.edge.openFiles], ['edge.upstreamConnections × 2 (relay and direct)', c.edge.upstreamConnections * 2],
        ['edge.maxFills × maxFillSegments', c.edge.maxFills * c.edge.maxFillSegments], base]),
      secrets: [
        { setting: 'edge.upstreamTokenFile', file: c.edge.upstreamTokenFile, env: 'REELCDN_EDGE_UPSTREAM_TOKEN', without: 'fills carry no credential (fine only if the router\'s reads are public)' },
        { setting: 'edge.adminTokenFile', file: c.edge.adminTokenFile, env: 'REELCDN_EDGE_ADMIN_TOKEN', without: 'purge, cache status and prefill control are refused' },
        ...(c.edge.heartbeatMs > 0 ? [{ setting: 'edge.edgeTokenFile', file: c.edge.edgeTokenFile, env: 'REELCDN_EDGE_TOKEN', without: 'the router refuses heartbeats, so it steers no player here' }] : []),
        { setting: 'edge.tokenKeysFile', file: c.edge.tokenKeysFile, env: 'REELCDN_TOKEN_KEYS', keys: true, required: c.edge.requireToken,
          without: c.edge.requireToken ? 'edge.requireToken is on: every player is refused'
            : 'play tokens are not verified, so demand counts a play per client address and title, not per viewer' },
      ],
    }
    case 'ingest': return {
      dir: { setting: 'ingest.workDir', dir: c.ingest.workDir, subdirs: [] },
      space: { setting: 'ingest.workDir', dir: c.ingest.workDir, bytes: 10 * GIB, soft: true,
        short: 'a transcode keeps every rendition here until it is published (a two-hour 1080p ladder is several GiB)', fix: 'free space, or set ingest.workDir' },
      secrets: [{ setting: 'router.tokenFile', file: c.router.tokenFile, env: 'REELCDN_ROUTER_TOKEN', required: true, without: 'the router refuses an ingest without the admin token' }],
    }
  }
}
