import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { loadConfig, type Config } from '../../lib/config/config.js'
import { writeSecretFile } from '../../lib/security/secret-file.js'
import { quietLogger } from '../../lib/logger.js'
import { startOrigin } from '../../origin/main.js'
import { startRouter } from '../../router/main.js'
import { startEdge } from '../../edge/main.js'

/**
 * The sample configs under deploy/config, as an installed machine would have
 * them, moved into a test directory: /etc/reelcdn/secrets/ becomes
 * <dir>/secrets/ (every secret the samples name, generated 0600) and
 * /var/lib/reelcdn/ becomes <dir>/var/, so a test loads each sample through
 * the real config loader with only what a test must change (ports, peers'
 * addresses) given as overrides.
 */
export const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url))
export const SAMPLES = ['shard', 'router', 'edge'] as const
export type Role = typeof SAMPLES[number]

export const samplePath = (role: Role) => join(DEPLOY, 'config', `${role}.json`)

/** Every secret the samples name, by file name: the same value on every machine that shares it. */
export interface Secrets { [file: string]: string }

export async function installSecrets(dir: string): Promise<Secrets> {
  const out: Secrets = {}
  mkdirSync(join(dir, 'secrets'), { recursive: true })
  for (const role of SAMPLES) {
    for (const m of readFileSync(samplePath(role), 'utf8').matchAll(/"\/etc\/reelcdn\/secrets\/([^"]+)"/g)) {
      const name = m[1]!
      if (out[name] !== undefined) continue
      out[name] = name === 'token-keys' ? `k1:${randomBytes(32).toString('hex')}` : randomBytes(24).toString('hex')
      await writeSecretFile(join(dir, 'secrets', name), `${out[name]}\n`)
    }
  }
  return out
}

/** Writes the sample for `role` into `dir` with its machine paths moved there; returns the new file. */
export function installSample(role: Role, dir: string, name: string = role): string {
  const text = readFileSync(samplePath(role), 'utf8')
    .replaceAll('/etc/reelcdn/secrets/', `${join(dir, 'secrets')}/`)
    .replaceAll('/var/lib/reelcdn/', `${join(dir, 'var')}/`)
  const file = join(dir, `${name}.json`)
  writeFileSync(file, text)
  return file
}

/** The sample's config through loadConfig, as `reelcdn <role> --config` reads it, plus the test's overrides. */
export function sampleConfig(role: Role, dir: string, overrides: Record<string, unknown> = {}, name?: string): Readonly<Config> {
  return loadConfig({ file: installSample(role, dir, name), env: {}, overrides: overrides as never })
}

/**
 * Three shards, the router and the edge, each started in this process from
 * its sample config (installed under `dir` by `sampleConfig`) with only what
 * a test machine needs changed: loopback and port 0, the shards' addresses,
 * no disk reserve (the sample's 20 GiB is for a real disk), and the edge's
 * RAM tier not claimed at start (its 8 GiB are for a real appliance). `local`
 * overrides every service's config alike (a log level, a grace period).
 */
export async function startSampleCluster(t: { teardown(fn: () => unknown): void }, dir: string, local: Record<string, unknown>) {
  const shards: Awaited<ReturnType<typeof startOrigin>>[] = []
  for (const i of [1, 2, 3]) {
    const cfg = sampleConfig('shard', dir, { ...local, 'origin.id': `shard-${i}`, 'origin.host': '127.0.0.1', 'origin.port': 0,
      'origin.dataDir': join(dir, 'var', `shard-${i}`), 'origin.reserveBytes': 0 }, `shard-${i}`)
    const s = await startOrigin(cfg, { logger: quietLogger('origin'), env: {} })
    t.teardown(() => s.close())
    shards.push(s)
  }
  const sample = loadConfig({ file: samplePath('router'), env: {} })
  const router = await startRouter(sampleConfig('router', dir, { ...local, 'router.host': '127.0.0.1', 'router.port': 0,
    'cluster.shards': sample.cluster.shards.map((s, i) => ({ ...s, url: shards[i]!.url })) }), { logger: quietLogger('router'), env: {} })
  t.teardown(() => router.close())
  await router.cluster.health.checkAll()
  // the sample's 8 GiB RAM tier is a real appliance's: not claimed at start here (4 GiB faulted in, edge.ramPrefault)
  const edge = await startEdge(sampleConfig('edge', dir, { ...local, 'edge.host': '127.0.0.1', 'edge.port': 0, 'edge.upstream': router.url,
    'edge.ramPrefault': false }),
    { logger: quietLogger('edge'), env: {} })
  t.teardown(() => edge.close())
  return { shards, router, edge }
}
