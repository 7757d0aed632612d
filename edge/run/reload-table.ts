import type { Config } from '../../lib/config/config.js'
import type { Logger } from '../../lib/logger.js'
import { keyRingChange, type LiveSetting, type Prepared } from '../../lib/reload.js'
import { loadKeyRing, type KeyRing } from '../../lib/security/tokens.js'
import type { GrantsCache } from '../fill/grants-cache.js'
import type { Upstream } from '../fill/upstream.js'
import type { EdgeReporter } from '../prefill/demand.js'
import { parseFillWindow } from '../prefill/fill-window.js'
import type { PrefillRunner } from '../prefill/prefill.js'
import type { PlayAuth } from '../serve/play-auth.js'
import type { DiskTier } from '../tiers/disk-tier.js'
import type { RamTier } from '../tiers/ram-tier.js'

/**
 * What an edge changes while it runs (lib/reload.ts runs the table): one entry
 * per setting or section, each applied by swapping what readers look up next,
 * so a player in the middle of a read finishes on what it started with:
 *   log.level            the logger's level (the serve threads keep theirs until a restart)
 *   edge.ramBytes        the RAM tier's policy resizes; shrinking evicts in its order,
 *                        a Buffer a response still sends lives until it is sent
 *   edge.diskBytes       the disk tier's policy resizes; shrinking unlinks victims,
 *                        a read in flight finishes on its open descriptor
 *   edge.prefill.*       window, rate, budget, quiet time, check interval from the
 *                        running pass's next chunk; titles and demand window from the next pass
 *   edge.upstream        new requests (fills, manifests, grants, heartbeats, demand)
 *                        go to the new router; those in flight finish on the old pool
 *   token keys           the key file is read again at every reload (a rotation
 *                        changes its content, not its path); new keys verify from
 *                        the next request, cached verdicts are dropped
 * Turning a tier on or off (0 ↔ bytes), adding token keys to an edge started
 * without them, and new keys with serve threads need a restart: the answer says so.
 */
export interface EdgeLive {
  logger: Logger
  ram: RamTier
  disk: DiskTier
  prefill: PrefillRunner
  upstream: Upstream
  grants: GrantsCache | undefined
  reporter: EdgeReporter
  /** what the prefill's demand query reads per pass */
  demand: { upstream: string; titles: number; demandWindow: Config['edge']['prefill']['demandWindow'] }
  ring: KeyRing | undefined
  auth: PlayAuth | undefined
  serveThreads: number
  env: NodeJS.ProcessEnv
}

export function edgeReloadTable(e: EdgeLive): LiveSetting[] {
  return [
    { paths: ['log.level'], prepare: next => ({ applied: ['log.level'], commit: () => { e.logger.level = next.log.level } }) },
    { paths: ['edge.ramBytes'], prepare: (next, prev) => tierSize('edge.ramBytes', next.edge.ramBytes, prev.edge.ramBytes, n => void e.ram.resize(n)) },
    { paths: ['edge.diskBytes'], prepare: (next, prev) => tierSize('edge.diskBytes', next.edge.diskBytes, prev.edge.diskBytes, n => e.disk.resize(n)) },
    { paths: ['edge.prefill'], prepare: next => {
      const pc = next.edge.prefill
      // the schema checked its form; parsing again here is what the runner will use
      const window = parseFillWindow(pc.window)
      return { applied: ['edge.prefill'], commit: () => {
        e.prefill.reconfigure({ window, rateMBps: pc.rateMBps, budgetBytes: pc.budgetBytes, quietMs: pc.quietMs, checkMs: pc.checkMs })
        e.demand.titles = pc.titles
        e.demand.demandWindow = pc.demandWindow
      } }
    } },
    { paths: ['edge.upstream'], prepare: next => ({ applied: ['edge.upstream'], commit: () => {
      e.upstream.retarget(next.edge.upstream)
      e.grants?.retarget(next.edge.upstream)
      e.reporter.retarget(next.edge.upstream)
      e.demand.upstream = next.edge.upstream
    } }) },
    { paths: ['edge.tokenKeysFile'], always: true, prepare: next => keyRingChange('edge.tokenKeysFile', loadKeyRing(next.edge.tokenKeysFile, e.env), e.ring,
      e.serveThreads > 0 ? 'serve threads hold their own keys' : undefined, () => e.auth?.forget()) },
  ]
}

/** A tier's new size, unless it turns the tier on or off (the tiers are wired at start). */
function tierSize(path: string, next: number, prev: number, resize: (n: number) => unknown): Prepared {
  if ((next === 0) !== (prev === 0)) return { restart: [path], commit: () => {} }
  return { applied: [path], commit: async () => { await resize(next) } }
}
