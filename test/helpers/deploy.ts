import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { loadConfig, type Config } from '../../lib/config.js'
import { writeSecretFile } from '../../lib/secret-file.js'

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
