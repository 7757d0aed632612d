import type { Logger } from '../lib/logger.js'
import { keyRingChange, type LiveSetting } from '../lib/reload.js'
import { loadKeyRing, type KeyRing } from '../lib/security/tokens.js'
import type { Cluster } from './cluster/cluster.js'
import { Ring } from './cluster/ring.js'
import type { EdgeRegistry } from './playback/edge-registry.js'

/**
 * What a router changes while it runs (lib/reload.ts runs the table):
 *   log.level            the logger's level
 *   cluster.shards       the shard list and weights: a new ring (Cluster.reshard), built
 *                        and checked before anything changes, swapped in one assignment;
 *                        copies the new ring places elsewhere move at the repairer's next pass
 *   router.edgeSilenceMs how long an edge may be silent before it leaves steering
 *   token keys           the key file is read again at every reload; a rotation signs
 *                        and verifies with the new keys from the next request
 * cluster.copies and cluster.vnodes change every key's owners at once and need a restart.
 */
export interface RouterLive {
  logger: Logger
  cluster: Cluster
  edges: EdgeRegistry
  ring: KeyRing | undefined
  env: NodeJS.ProcessEnv
}

export function routerReloadTable(r: RouterLive): LiveSetting[] {
  return [
    { paths: ['log.level'], prepare: next => ({ applied: ['log.level'], commit: () => { r.logger.level = next.log.level } }) },
    { paths: ['cluster.shards'], prepare: (next, prev) => {
      // copies and vnodes keep their running values (a change there needs a restart): the new ring uses them
      const ring = new Ring(next.cluster.shards, prev.cluster.copies, prev.cluster.vnodes)
      return { applied: ['cluster.shards'], commit: () => {
        const before = new Set(r.cluster.shards.map(s => s.id))
        r.cluster.reshard(next.cluster.shards, ring)
        const after = new Set(next.cluster.shards.map(s => s.id))
        r.logger.warn({ added: [...after].filter(id => !before.has(id)), removed: [...before].filter(id => !after.has(id)) },
          'shard list reloaded: placement follows the new ring; the repairer moves copies at its next pass')
      } }
    } },
    { paths: ['router.edgeSilenceMs'], prepare: next => ({ applied: ['router.edgeSilenceMs'], commit: () => { r.edges.silenceMs = next.router.edgeSilenceMs } }) },
    { paths: ['router.tokenKeysFile'], always: true, prepare: next => keyRingChange('router.tokenKeysFile', loadKeyRing(next.router.tokenKeysFile, r.env), r.ring, undefined) },
  ]
}
