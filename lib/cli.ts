import { Command, InvalidArgumentError, Option } from 'commander'
import { defaults, envName, getPath, loadConfig, type Config } from './config/config.js'
import { CdnError } from './errors.js'
import { formatBytes, parseBytes } from './config/units.js'

/**
 * Flags are one more config layer. A service declares each flag once, with the
 * setting it sets; `--help` then shows the default from config/default.json and
 * its unit, and only flags the user typed override the file and environment.
 */
export type FlagKind = 'string' | 'int' | 'number' | 'bytes' | 'bool'

export interface Flag {
  flags: string
  path: string
  kind: FlagKind
  description: string
  /** shown after the default, e.g. 'MB/s' */
  unit?: string
  /** an old name kept working but left out of --help (list it before the new one: if both are given, the later wins) */
  hidden?: boolean
}

function parser(kind: FlagKind): ((v: string) => unknown) | undefined {
  switch (kind) {
    case 'int': return v => {
      if (!/^-?[0-9]+$/.test(v)) throw new InvalidArgumentError('expected an integer.')
      return Number(v)
    }
    case 'number': return v => {
      const n = Number(v)
      if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.')
      return n
    }
    case 'bytes': return v => {
      try { return parseBytes(v) } catch (err) { throw new InvalidArgumentError(`${(err as Error).message}.`) }
    }
    default: return undefined
  }
}

function shownDefault(f: Flag): string {
  const d = getPath(defaults(), f.path)
  if (f.kind === 'bytes' && typeof d === 'number') return `${formatBytes(d)}`
  if (d === '') return 'none'
  return `${JSON.stringify(d)}${f.unit ? ' ' + f.unit : ''}`
}

export function addFlags(cmd: Command, flags: Flag[]): Command {
  cmd.option('-c, --config <file>', 'JSON config file, layered over config/default.json (env REELCDN_* and flags override it) (default: none)')
  for (const f of flags) {
    const o = new Option(f.flags, `${f.description} (default: ${shownDefault(f)}; env ${envName(f.path)})`)
    const p = parser(f.kind)
    if (p) o.argParser(p)
    if (f.hidden) o.hideHelp()
    cmd.addOption(o)
  }
  return cmd
}

/** Config from defaults, --config, environment, then the flags the user typed. */
export function configFromFlags(cmd: Command, flags: Flag[], env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const opts = cmd.opts<Record<string, unknown>>()
  const overrides: Record<string, never> = {}
  for (const f of flags) {
    const key = cmd.options.find(o => o.flags === f.flags)!.attributeName()
    if (opts[key] !== undefined) overrides[f.path] = opts[key] as never
  }
  return loadConfig({ file: opts.config as string | undefined, env, overrides })
}

export const commonFlags: Flag[] = [
  { flags: '--log-level <level>', path: 'log.level', kind: 'string', description: 'fatal, error, warn, info, debug, trace or silent' },
  { flags: '--log-requests', path: 'log.requests', kind: 'bool', description: 'log one JSON line per request' },
  { flags: '--log-file <file>', path: 'log.file', kind: 'string', description: 'append the log to this file (reopened on SIGUSR1) instead of stdout' },
]

/**
 * Runs a service until SIGTERM or SIGINT, then closes it gracefully and sets
 * the exit code. A second signal during the drain exits at once. SIGHUP
 * reloads the config (the service logs what changed, or why it refused).
 */
export async function runUntilSignalled(start: () => Promise<{ close(): Promise<void>; reload?(by: 'SIGHUP'): Promise<unknown> }>): Promise<void> {
  let svc
  try {
    svc = await start()
  } catch (err) {
    fail(err)
    return
  }
  let stopping = false
  const stop = (sig: string) => {
    if (stopping) {
      process.stderr.write(`${sig} again: exiting without waiting for the drain\n`)
      process.exit(130)
    }
    stopping = true
    svc.close().then(() => { process.exitCode = 0 }, err => fail(err))
  }
  // SIGHUP re-reads the config (lib/reload.ts) where the service can; elsewhere it is ignored rather than fatal
  process.on('SIGHUP', () => { if (!stopping) void svc.reload?.('SIGHUP') })
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

export function fail(err: unknown): void {
  const msg = err instanceof CdnError || err instanceof Error ? err.message : String(err)
  process.stderr.write(`reelcdn: ${msg}\n`)
  process.exitCode = err instanceof CdnError && err.source === 'config' ? 78 : 1
}
