import { randomBytes } from 'node:crypto'
import { mkdir, stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { Config } from '../lib/config/config.js'
import { serviceUrl } from '../lib/config/config.js'
import { createLogger } from '../lib/logger.js'
import { readSecretFile, writeSecretFile } from '../lib/security/secret-file.js'
import { startOrigin } from '../origin/main.js'
import { startRouter } from '../router/main.js'
import { startEdge } from '../edge/main.js'

/**
 * The members of `reelcdn cluster` and the settings each runs with. Every
 * shard of cluster.shards listens on its URL's host and port with its data in
 * <local.dataDir>/<shard id>, then the router on router.host:router.port with
 * its own state (trending, sessions) in <local.dataDir>/router, then one edge
 * on edge.host:edge.port filling from that router, its cache in
 * <local.dataDir>/edge. Nothing is left relative to the working directory:
 * the data dir is made absolute first, and every path a member uses is under
 * it (or was configured by the user).
 *
 * A member's settings are final only once the members before it have started:
 * with port 0, the router learns the shards' ports and the edge the router's
 * as they start. Each member's `config` is updated then, so what startCluster
 * writes to <local.dataDir>/cluster.json is what really runs.
 *
 * Secrets not configured are generated into <local.dataDir> (mode 0600, and a
 * file others may read is refused: ensureSecret) on the first run and reused
 * on later runs, so a restart keeps tokens already handed out valid: the
 * admin token (router-token), the shards' token (shard-token: every shard and
 * the router; a shard without one refuses writes), the
 * play-token keys (token-keys, `k1:<hex>`, given to the router and the edge),
 * the edge credential (edge-token: the edge registers with the router and
 * reports demand) and the edge's admin token (edge-admin-token: purge, cache
 * status, prefill control). With router.requireToken on, the edge's fill
 * credential too (read-token: the router's read token, the edge's upstream token).
 */
export interface Member {
  name: string
  /** the settings it runs with: final once the members before it have started (their ports, with port 0) */
  config: Readonly<Config>
  start(): Promise<{ url: string; close(): Promise<void> }>
}

const hex = (bytes: number) => () => randomBytes(bytes).toString('hex')

export async function members(config: Readonly<Config>, env: NodeJS.ProcessEnv): Promise<Member[]> {
  const dataDir = resolve(config.local.dataDir)
  const level = config.log.level
  const first = config.cluster.shards[0]!
  // the shards' shared settings; each shard's host, port and data dir are set below (these are the first shard's)
  const origin = { ...config.origin, ...listenOn(first.url), dataDir: join(dataDir, first.id) }
  const router = { ...config.router, dataDir: join(dataDir, 'router') }
  const edge = { ...config.edge, dataDir: join(dataDir, 'edge') }
  const secret = (name: string, make: () => string) => ensureSecret(join(dataDir, name), make)
  if (!env.REELCDN_ROUTER_TOKEN && !router.tokenFile) router.tokenFile = await secret('router-token', hex(24))
  if (!env.REELCDN_SHARD_TOKEN) {
    // one token for both sides: a shard without one refuses every write and delete (origin/server.ts)
    const file = origin.tokenFile || router.shardTokenFile || await secret('shard-token', hex(24))
    origin.tokenFile ||= file
    router.shardTokenFile ||= file
  }
  if (!env.REELCDN_TOKEN_KEYS && !router.tokenKeysFile && !edge.tokenKeysFile)
    router.tokenKeysFile = edge.tokenKeysFile = await secret('token-keys', () => `k1:${randomBytes(32).toString('hex')}`)
  if (!env.REELCDN_EDGE_TOKEN && !router.edgeTokenFile && !edge.edgeTokenFile)
    router.edgeTokenFile = edge.edgeTokenFile = await secret('edge-token', hex(24))
  if (!env.REELCDN_EDGE_ADMIN_TOKEN && !edge.adminTokenFile) edge.adminTokenFile = await secret('edge-admin-token', hex(24))
  // a router requiring play tokens lets edges fill only with the read (or admin) token: give the edge one
  if (router.requireToken && !env.REELCDN_ROUTER_READ_TOKEN && !router.readTokenFile && !env.REELCDN_EDGE_UPSTREAM_TOKEN && !edge.upstreamTokenFile)
    router.readTokenFile = edge.upstreamTokenFile = await secret('read-token', hex(24))

  // transcodes of `reelcdn ingest --renditions` against this cluster (the adaptive sample's too) keep their work here
  const ingest = { ...config.ingest, workDir: join(dataDir, 'ingest') }
  const base: Config = { ...config, local: { ...config.local, dataDir }, origin, router, edge, ingest }
  // where each shard really listens, filled in as they start (the ring hashes ids, so only the urls change)
  const shardUrls = new Map<string, string>()
  const out: Member[] = config.cluster.shards.map(s => {
    const m: Member = {
      name: s.id,
      config: { ...base, origin: { ...origin, id: s.id, ...listenOn(s.url), dataDir: join(dataDir, s.id) } },
      start: async () => {
        const started = await startOrigin(m.config, { logger: createLogger('origin', level).child({ shard: s.id }), env })
        shardUrls.set(s.id, started.url)
        m.config = { ...m.config, origin: { ...m.config.origin, port: started.port } }
        return started
      },
    }
    return m
  })
  let routerUrl = serviceUrl(router.host, router.port, config.http.tlsCertFile !== '')
  const r: Member = {
    name: 'router',
    config: base,
    start: async () => {
      const shards = config.cluster.shards.map(s => ({ ...s, url: shardUrls.get(s.id) ?? s.url }))
      r.config = { ...r.config, cluster: { ...r.config.cluster, shards } }
      const started = await startRouter(r.config, { logger: createLogger('router', level), env })
      routerUrl = started.url
      r.config = { ...r.config, router: { ...r.config.router, port: started.port } }
      return started
    },
  }
  const e: Member = {
    name: 'edge',
    config: { ...base, edge: { ...edge, upstream: routerUrl } },
    start: async () => {
      e.config = { ...e.config, edge: { ...e.config.edge, upstream: routerUrl } }
      const started = await startEdge(e.config, { logger: createLogger('edge', level), env })
      e.config = { ...e.config, edge: { ...e.config.edge, port: started.port } }
      return started
    },
  }
  out.push(r, e)
  return out
}

/** The host and port a shard listens on: its url's. */
function listenOn(url: string): { host: string; port: number } {
  const u = new URL(url)
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) }
}

/**
 * The secret in `file`, written by `make()` when the file is missing or empty
 * (mode 0600 on every write, lib/security/secret-file.ts). A file holding a secret that
 * its group or others may read or write is refused (SecretFileModeError, naming
 * the file and its mode), not used: the secret may have leaked, so it is for
 * the operator to chmod it or delete it for a new one. Returns the file.
 */
export async function ensureSecret(file: string, make: () => string): Promise<string> {
  await mkdir(dirname(file), { recursive: true })
  const size = await stat(file).then(s => s.size, (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return 0
    throw err
  })
  if (size > 0 && readSecretFile(file).trim()) return file
  await writeSecretFile(file, make() + '\n')
  return file
}

/**
 * The config with every member's port moved to `base`: the router at base, shard i (from 1) at base + 100 + i, the
 * edge at base + 1080, so 7000 gives the default layout (7000, 7101-7103, 8080). Shards keep their ids and hosts.
 */
export function withBasePort(config: Readonly<Config>, base: number): Readonly<Config> {
  const shards = config.cluster.shards.map((s, i) => {
    const u = new URL(s.url)
    u.port = String(base + 101 + i)
    return { ...s, url: u.origin }
  })
  return { ...config, cluster: { ...config.cluster, shards }, router: { ...config.router, port: base }, edge: { ...config.edge, port: base + 1080 } }
}
