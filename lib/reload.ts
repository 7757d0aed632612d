import type { Config } from './config/config-schema.js'
import { getPath, setPath } from './config/config.js'
import { CdnError, ConfigError } from './errors.js'
import type { Logger } from './logger.js'
import type { KeyRing } from './security/tokens.js'
import { sendJson, type Route } from './http/http.js'
import type { IncomingMessage } from 'node:http'

/**
 * Reloading a running service's configuration (SIGHUP, or POST /admin/reload).
 *
 * Theory of operation. A service declares a table of the settings it can
 * change while it runs (`LiveSetting`), each naming the config paths it covers
 * (a leaf such as `log.level`, or a section such as `edge.prefill`). A reload:
 *   1. loads the config again (the same layers as at start: defaults, --config
 *      file, REELCDN_* environment, flags; the file is what changes); a config
 *      that does not load or validate is refused whole, nothing changes;
 *   2. diffs the new config against the effective one, leaf by leaf (an array
 *      is one leaf: a shard list changes as a whole);
 *   3. gives every changed leaf to the entry that covers it; a leaf no entry
 *      covers needs a restart, and is named in the answer and the log;
 *   4. prepares every entry concerned, in table order (plus the `always`
 *      entries, which read something outside the config, such as a key file's
 *      content): a prepare checks what it needs (reads a file, builds a ring)
 *      and returns its commit, or throws a ConfigError to refuse the reload.
 *      Nothing has changed yet, so a refusal leaves the running config whole;
 *   5. commits them, in table order. A commit does not fail for a bad config
 *      (the prepare would have said); if one throws anyway, the others
 *      stand, the error is reported, and that entry's leaves keep their
 *      running values. What it had changed before it threw is not known, so
 *      the next reload prepares and commits that entry whatever the diff:
 *      the same file is tried again, and a file put back as it was puts the
 *      running state back too.
 * The effective config then becomes the new one, except the leaves that need a
 * restart, which keep their running values: the next reload names them again
 * until the service restarts.
 *
 * One reload at a time: a SIGHUP during an admin reload waits for it. Nothing
 * here touches the byte path; the appliers swap what readers look up (a
 * policy's capacity, a ring, a key ring's keys), so a read in flight finishes
 * on what it started with.
 */
export interface LiveSetting {
  /** config paths this entry covers: a leaf, or a section and everything under it */
  paths: string[]
  /** run on every reload, changed or not: what it applies lives outside the config (a secret file's content) */
  always?: boolean
  /**
   * Checks `next` and returns the commit, or undefined when there is nothing to do (an `always` entry whose
   * file did not change). Throws a ConfigError (the reason) to refuse the reload; changes nothing itself.
   * A string in `restart` instead names a leaf this entry cannot apply in the current state (it then stays as running).
   */
  prepare(next: Readonly<Config>, prev: Readonly<Config>): Prepared | undefined
}

export interface Prepared {
  /** what the answer lists as applied (setting paths, or a description such as `edge.tokenKeysFile (content)`) */
  applied?: string[]
  /** leaves this entry cannot change now (say, a tier turned on or off): they keep their running values */
  restart?: string[]
  commit(): void | Promise<void>
}

export interface ReloadResult {
  ok: boolean
  /** the new config was refused whole (it does not load, validate or apply): nothing changed */
  refused: boolean
  /** settings applied live */
  applied: string[]
  /** settings that changed in the file but take effect only after a restart */
  restartNeeded: string[]
  /** why the reload was refused (ok false) */
  errors: string[]
}

/** Leaves of a config tree by dotted path, values as JSON (arrays are leaves). */
export function leaves(tree: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (typeof tree === 'object' && tree !== null && !Array.isArray(tree)) {
    for (const [k, v] of Object.entries(tree)) leaves(v, prefix ? `${prefix}.${k}` : k, out)
  } else {
    out.set(prefix, JSON.stringify(tree))
  }
  return out
}

/** The dotted paths whose values differ between `a` and `b` (present in one only included). */
export function changedPaths(a: unknown, b: unknown): string[] {
  const la = leaves(a)
  const lb = leaves(b)
  const out = new Set<string>()
  for (const [k, v] of la) if (lb.get(k) !== v) out.add(k)
  for (const k of lb.keys()) if (!la.has(k)) out.add(k)
  return [...out].sort()
}

function covers(entry: LiveSetting, path: string): boolean {
  return entry.paths.some(p => path === p || path.startsWith(`${p}.`))
}

export class Reloader {
  private running: Promise<ReloadResult> | undefined
  private effective: Readonly<Config>
  /** entries whose last commit threw: what they run may be half changed, so the next reload prepares them whatever the diff */
  private readonly failedEntries = new Set<LiveSetting>()

  constructor(
    initial: Readonly<Config>,
    private readonly load: () => Readonly<Config>,
    private readonly table: readonly LiveSetting[],
    private readonly logger: Logger,
    /** the sections (or leaves) this service reads; changes elsewhere in a shared file are ignored */
    private readonly scope: readonly string[] = [''],
  ) {
    this.effective = initial
  }

  /** The config in effect: the start-up one with every reload's live changes applied. */
  get config(): Readonly<Config> {
    return this.effective
  }

  /** One reload; `by` says who asked (logged). Never throws: a refusal is `ok: false` with the reasons. */
  reload(by: 'SIGHUP' | 'admin'): Promise<ReloadResult> {
    const run = (this.running ?? Promise.resolve()).then(() => this.run(by))
    this.running = run.finally(() => { if (this.running === run) this.running = undefined }) as Promise<ReloadResult>
    return run
  }

  private async run(by: string): Promise<ReloadResult> {
    const prev = this.effective
    let next: Readonly<Config>
    try {
      next = this.load()
    } catch (err) {
      return this.refused(by, err)
    }
    const changed = changedPaths(prev, next).filter(p => this.scope.some(s => s === '' || p === s || p.startsWith(`${s}.`)))
    const restart = new Set(changed.filter(p => !this.table.some(e => covers(e, p))))
    const prepared: { entry: LiveSetting; p: Prepared }[] = []
    try {
      for (const e of this.table) {
        if (!e.always && !this.failedEntries.has(e) && !changed.some(p => covers(e, p))) continue
        const p = e.prepare(next, prev)
        if (p === undefined) continue
        for (const r of p.restart ?? []) restart.add(r)
        prepared.push({ entry: e, p })
      }
    } catch (err) {
      return this.refused(by, err)
    }
    const applied: string[] = []
    const errors: string[] = []
    // the leaves of an entry whose commit failed: not in effect, so they keep their running values and the next reload tries again
    const failed: string[] = []
    for (const { entry, p } of prepared) {
      try {
        await p.commit()
        applied.push(...(p.applied ?? []))
        this.failedEntries.delete(entry)
      } catch (err) {
        errors.push((err as Error).message)
        failed.push(...changed.filter(c => covers(entry, c)))
        this.failedEntries.add(entry)
        this.logger.error({ err: (err as Error).message }, 'reload: a setting could not be applied; it keeps its running value (the next reload tries it again), the others stand')
      }
    }
    // the leaves that need a restart keep their running values, so the next reload names them again
    const tree = structuredClone(next) as unknown as Record<string, never>
    for (const p of [...restart, ...failed]) {
      // an entry may name something that is not a leaf, such as `router.tokenKeysFile (keys)`
      const was = getPath(prev, p)
      if (was !== undefined) setPath(tree, p, structuredClone(was) as never)
    }
    this.effective = tree as unknown as Readonly<Config>
    const result: ReloadResult = { ok: errors.length === 0, refused: false, applied, restartNeeded: [...restart].sort(), errors }
    this.logger[restart.size ? 'warn' : 'info']({ by, applied, restartNeeded: result.restartNeeded },
      restart.size ? `config reloaded; these settings need a restart: ${result.restartNeeded.join(', ')}` : 'config reloaded')
    return result
  }

  private refused(by: string, err: unknown): ReloadResult {
    const msg = err instanceof Error ? err.message : String(err)
    // a config the operator got wrong is theirs to fix, not an outage: warn, the running config stays
    if (!(err instanceof CdnError) || err.source !== 'config') this.logger.error({ err: msg }, 'reload failed unexpectedly; the running config stays')
    else this.logger.warn({ by, err: msg }, 'reload refused; the running config stays')
    return { ok: false, refused: true, applied: [], restartNeeded: [], errors: msg.split('\n').map(s => s.trim()).filter(Boolean) }
  }
}

/** Throws a ConfigError naming `path` (for a prepare to refuse a value the schema lets through). */
export function refuse(path: string, why: string): never {
  throw new ConfigError(`${path}: ${why}`)
}

/**
 * Token keys, read again at every reload (a rotation changes the key file's
 * content, not its path; a bad file is a ConfigError that refuses the reload):
 * nothing when they are the same, else `adopt` into the running ring, which
 * every holder shares, then `adopted` (drop cached verdicts). Keys where there
 * were none (the routes that need them were not wired), none where there were
 * some (refusing every token is not a reload's call), or `restartWhy`: a restart.
 */
export function keyRingChange(path: string, next: KeyRing | undefined, ring: KeyRing | undefined, restartWhy: string | undefined,
  adopted: () => void = () => {}): Prepared | undefined {
  if (next === undefined && ring === undefined) return undefined
  if (next !== undefined && ring !== undefined && ring.same(next)) return undefined
  const what = `${path} (keys)`
  if (next === undefined || ring === undefined || restartWhy !== undefined) return { restart: [restartWhy ? `${what}: ${restartWhy}` : what], commit: () => {} }
  return { applied: [what], commit: () => { ring.adopt(next); adopted() } }
}

/**
 * POST /admin/reload: the same reload as SIGHUP, behind the admin token
 * (`authorize` throws 401). 200 with what was applied and what needs a
 * restart; 400 with the reasons when the config was refused (the running one
 * stays); 500 when a setting failed to apply.
 */
export function reloadRoute(reloader: () => Reloader | undefined, authorize: (req: IncomingMessage) => void): Route {
  return { path: '/admin/reload', methods: { POST: async (req, res) => {
    authorize(req)
    const r = reloader()
    if (r === undefined) return sendJson(res, 503, { error: 'starting: reload once the service is ready' })
    const result = await r.reload('admin')
    sendJson(res, result.refused ? 400 : result.ok ? 200 : 500, result)
  } } }
}
