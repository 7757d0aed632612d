/**
 * What one repair pass found and did. `chunks.underReplicated` counts keys
 * that lacked a good copy on some reachable owner when scanned; `remaining`
 * is what is still wrong after the pass's own repairs (what /v1/cluster and
 * the replica metrics show).
 *
 * Every pass leaves its report on the shards it reached, and routers read it
 * back from the shards' status (origin/repair-record.ts): /v1/cluster shows the
 * newest pass any process ran, `latestReport`, placed on this router's clock.
 */
export interface RepairReport {
  startedAt: number
  finishedAt: number | null
  dryRun: boolean
  /** who ran the pass: `router <id>` or `reelcdn router repair` (reports from before ranOn: `reelcdn router repair on <host>`) */
  ranBy?: string
  /** the machine's hostname: for an operator, never in a public answer (`whoRan`) */
  ranOn?: string
  /** shards that did not answer: their replicas are counted, not checked */
  unreachable: string[]
  manifests: { scanned: number; underReplicated: number; copied: number; misplacedDeleted: number; conflicts: number }
  chunks: {
    scanned: number
    underReplicated: number
    copied: number
    /** corrupt or wrong copies on owners, overwritten from a good copy */
    replaced: number
    misplacedDeleted: number
    orphans: number
    orphansDeleted: number
    /** chunks with no good copy anywhere (including named by a manifest but held by no shard) */
    lost: number
  }
  bytesCopied: number
  failures: number
  remaining: { underReplicated: number; lost: number; misplaced: number; misplacedManifests: number; orphans: number }
}

export interface RepairProgress {
  phase: 'probe' | 'manifests' | 'chunks' | 'done'
  /** keys scanned in this phase */
  scanned: number
  /** chunk keys in the cluster, estimated from the shards' counts */
  estimatedChunks: number
  bytesCopied: number
  copied: number
  deleted: number
}

export function emptyReport(dryRun: boolean, unreachable: string[]): RepairReport {
  return {
    startedAt: Date.now(), finishedAt: null, dryRun, unreachable,
    manifests: { scanned: 0, underReplicated: 0, copied: 0, misplacedDeleted: 0, conflicts: 0 },
    chunks: { scanned: 0, underReplicated: 0, copied: 0, replaced: 0, misplacedDeleted: 0, orphans: 0, orphansDeleted: 0, lost: 0 },
    bytesCopied: 0, failures: 0,
    remaining: { underReplicated: 0, lost: 0, misplaced: 0, misplacedManifests: 0, orphans: 0 },
  }
}

/** A finished pass and when it ended on this router's clock (a shard's report: when it reached the shard, by its age there). */
export interface PlacedReport {
  report: RepairReport
  at: number
}

/**
 * The newest finished pass among this router's own and those the shards hold
 * (any process's), by this router's clock: never by a report's finishedAt,
 * which is the clock of whatever machine ran the pass.
 */
export function latestReport(...placed: (PlacedReport | undefined)[]): PlacedReport | undefined {
  let best: PlacedReport | undefined
  for (const p of placed) {
    const r = p?.report
    if (!p || !r || typeof r.finishedAt !== 'number' || typeof r.remaining !== 'object' || r.remaining === null) continue
    if (!best || p.at > best.at) best = p
  }
  return best
}

/**
 * Who ran a pass, and on which machine. A machine's hostname is for the
 * operator (it names internal hosts, a laptop): /v1/cluster shows `ranOn` to
 * the admin token only. Reports from before ranOn carried the hostname in
 * ranBy (`reelcdn router repair on <host>`): it is split off the same way.
 */
export function whoRan(r: RepairReport): { ranBy: string | null; ranOn: string | null } {
  const old = /^(reelcdn router repair) on (.+)$/s.exec(r.ranBy ?? '')
  if (old) return { ranBy: old[1]!, ranOn: r.ranOn ?? old[2]! }
  return { ranBy: r.ranBy ?? null, ranOn: r.ranOn ?? null }
}
