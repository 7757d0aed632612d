import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '../errors.js'
import { configSchema, type Config } from './config-schema.js'

export type { Config } from './config-schema.js'

/**
 * Settings come from four layers, each over the one before:
 *   config/default.json  <  --config FILE  <  REELCDN_* environment  <  flags.
 * Environment names are derived from the defaults' paths: origin.dataDir is
 * REELCDN_ORIGIN_DATA_DIR. The result is validated, then frozen.
 */
const defaultsPath = fileURLToPath(new URL('../../../config/default.json', import.meta.url))

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type Tree = { [k: string]: Json }

let cachedDefaults: Tree | undefined
export function defaults(): Tree {
  cachedDefaults ??= JSON.parse(readFileSync(defaultsPath, 'utf8')) as Tree
  return structuredClone(cachedDefaults)
}

export function envName(path: string): string {
  return 'REELCDN_' + path.split('.').map(p => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')
}

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function merge(base: Tree, over: Tree, where: string): Tree {
  for (const [k, v] of Object.entries(over)) {
    const b = base[k]
    base[k] = isTree(b) && isTree(v) ? merge(b, v, `${where}${k}.`) : v
  }
  return base
}

/** Sets `a.b.c` in a tree, creating sections on the way. */
export function setPath(tree: Tree, path: string, value: Json): void {
  const parts = path.split('.')
  let t = tree
  for (const p of parts.slice(0, -1)) {
    if (!isTree(t[p])) t[p] = {}
    t = t[p] as Tree
  }
  t[parts[parts.length - 1]!] = value
}

export function getPath(tree: unknown, path: string): unknown {
  let t = tree
  for (const p of path.split('.')) t = isTree(t) ? t[p] : undefined
  return t
}

/** Reads a raw string as the type its default has, so `REELCDN_ORIGIN_PORT=abc` is caught by name. */
export function coerce(path: string, raw: string, like: unknown): Json {
  if (typeof like === 'string') return raw
  try {
    return JSON.parse(raw) as Json
  } catch {
    throw new ConfigError(`expected ${path} to be ${typeof like === 'number' ? 'a number' : 'JSON'}, got ${JSON.stringify(raw)}`)
  }
}

function envOverrides(base: Tree, env: NodeJS.ProcessEnv, prefix = ''): Tree {
  const out: Tree = {}
  for (const [k, v] of Object.entries(base)) {
    const path = prefix + k
    if (isTree(v)) {
      const sub = envOverrides(v, env, path + '.')
      if (Object.keys(sub).length) out[k] = sub
    } else {
      const raw = env[envName(path)]
      if (raw !== undefined) out[k] = coerce(path, raw, v)
    }
  }
  return out
}

export interface LoadOptions {
  file?: string | undefined
  env?: NodeJS.ProcessEnv
  /** dotted paths from flags, already typed */
  overrides?: Record<string, Json>
}

export function loadConfig(opts: LoadOptions = {}): Readonly<Config> {
  let tree = defaults()
  if (opts.file) {
    let text: string
    try {
      text = readFileSync(opts.file, 'utf8')
    } catch (err) {
      throw new ConfigError(`cannot read config file ${opts.file}: ${(err as Error).message}`)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (err) {
      throw new ConfigError(`config file ${opts.file} is not valid JSON: ${(err as Error).message}`)
    }
    if (!isTree(parsed)) throw new ConfigError(`config file ${opts.file} must hold a JSON object`)
    tree = merge(tree, parsed, '')
  }
  tree = merge(tree, envOverrides(tree, opts.env ?? process.env), '')
  for (const [path, value] of Object.entries(opts.overrides ?? {})) setPath(tree, path, value)
  return validate(tree)
}

/**
 * Settings that were renamed or replaced, with what to set instead: a config
 * written for an older release fails naming the new setting, not just "unknown".
 */
const REPLACED: Record<string, string> = {
  'edge.diskWriteQueue': 'edge.diskWriteQueueBytes (the disk write queue is bounded in bytes now, 512 MiB by default; it must hold at least one chunk)',
}

export function validate(tree: unknown): Readonly<Config> {
  const res = configSchema.safeParse(tree)
  if (!res.success) {
    const lines = res.error.issues.flatMap(i => {
      const path = i.path.join('.')
      if (i.code === 'unrecognized_keys') {
        return i.keys.map(k => {
          const full = [path, k].filter(Boolean).join('.')
          const instead = REPLACED[full]
          return instead ? `${full} was replaced by ${instead}` : `unknown setting ${full}`
        })
      }
      const got = getPath(tree, path)
      return `expected ${path} to be valid (${i.message}), got ${JSON.stringify(got)}`
    })
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`)
  }
  return deepFreeze(res.data)
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}

/**
 * Where a tool on this machine reaches a service that listens on host:port: a wildcard address is reached on
 * loopback, an IPv6 address goes in brackets.
 */
export function serviceUrl(host: string, port: number, tls = false): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `${tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${port}`
}

/** The router and the edge a config names (what `reelcdn cluster` writes to <data-dir>/cluster.json), for tools. */
export function configuredUrls(config: Readonly<Config>): { router: string; edge: string } {
  const tls = config.http.tlsCertFile !== ''
  return { router: serviceUrl(config.router.host, config.router.port, tls), edge: serviceUrl(config.edge.host, config.edge.port, tls) }
}
