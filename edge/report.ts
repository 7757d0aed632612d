import { readFileSync, statSync } from 'node:fs'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Config } from '../lib/config/config.js'
import { HIT_RESULTS, type PolicyReportProbe } from '../lib/metrics.js'
import { beladyByteFigures, partialShare } from '../tools/loadtest/belady.js'
import { createPolicy, parseTierKey, POLICY_NAMES } from './policy/policy.js'
import { logFiles, parseRequestLog, type LoggedRead, type LoggedUpstream } from './serve/request-log.js'

/**
 * `reelcdn edge report`: the edge's gap to the optimum. Replays the request
 * log (edge/serve/request-log.ts) through Belady's MIN and through each policy at
 * the edge's configured size, and prints the byte hit ratio and the origin
 * offload each achieves next to what the edge really served.
 *
 * Size: the disk tier's (the RAM tier holds a subset of it), or the RAM tier's
 * if the edge has no disk tier. Chunks differ in size (a title's last chunk is
 * short), so `min` is MIN in bytes (tools/loadtest/belady.ts `beladyBytes`):
 * furthest-next-use where part of a chunk may be kept. That is an upper bound
 * on any policy's byte hits when requests read whole chunks; counting MIN in
 * chunks of a typical size instead is not (short chunks fit more of them, and
 * the most hits need not be the most hit bytes). Where players read part of a
 * chunk it is an estimate of the optimum, not a bound; `partialReads` says how
 * many reads that is, and the printed report says so in words, with a row
 * above MIN marked and explained (the edge's own row can also pass MIN by
 * fetching ahead, which no cache that fetches on a miss does). The policies run by bytes, as in the edge. `achieved`
 * counts the reads answered from a tier (ram_hit, disk_hit) as hits, as the
 * edge's byte hit ratio does (lib/metrics.ts): a read that joined a fill in
 * flight (coalesced) is no hit.
 *
 * Offload: 1 − upstream bytes / bytes read. For `achieved`, the upstream bytes
 * the edge logged (all its fills: players', readahead's, prefill's), or null
 * for a log written before it logged them; a simulated policy fetches a whole
 * chunk on each miss; MIN the part of the chunk it did not hold.
 *
 * The figures are written to `<dataDir>/policy-report.json` (atomically), which
 * a running edge serves as reelcdn_edge_report_* gauges on /metrics.
 */
export const REPORT_FILE = 'policy-report.json'

export interface PolicyReport {
  at: number
  reads: number
  bytes: number
  skippedLines: number
  capacityBytes: number
  typicalChunkBytes: number
  /** share of reads that read less than their whole chunk (where `min` is an estimate, not a bound) */
  partialReads: number
  ratios: Record<string, ReportRow>
}

export interface ReportRow {
  byteHitRatio: number
  /** 1 − upstream bytes / bytes read; null when the log has no upstream bytes (written by an older edge) */
  offload: number | null
  ofOptimum: number
}

export async function readLog(dir: string): Promise<{ reads: LoggedRead[]; skipped: number; upstream: LoggedUpstream }> {
  const reads: LoggedRead[] = []
  const upstream: LoggedUpstream = { bytes: 0, lines: 0 }
  let skipped = 0
  for (const f of await logFiles(dir)) skipped += parseRequestLog(await readFile(f, 'utf8').catch(() => ''), reads, upstream)
  return { reads, skipped, upstream }
}

const HIT = new Set<string>(HIT_RESULTS)

/** `upstreamBytes`: what the edge fetched over the logged period, or null if unknown. */
export function analyse(reads: readonly LoggedRead[], capacityBytes: number, cfg: { sessionHorizon: number; sessionIdleMs: number },
  upstreamBytes: number | null = null): Omit<PolicyReport, 'at' | 'skippedLines'> {
  const bytes = reads.reduce((s, r) => s + r.bytes, 0)
  const sizes = reads.map(r => r.chunkBytes).sort((a, b) => a - b)
  const typical = sizes.length ? sizes[sizes.length >> 1]! : 1
  const ratio = (hitBytes: number) => (bytes > 0 ? hitBytes / bytes : 0)
  const offload = (fetched: number | null) => (fetched === null || bytes === 0 ? null : 1 - fetched / bytes)
  const min = beladyByteFigures(reads, capacityBytes)
  const minBytes = min.hitBytes
  const achieved = reads.reduce((s, r) => s + (HIT.has(r.result) ? r.bytes : 0), 0)
  const ratios: PolicyReport['ratios'] = {}
  const of = (hit: number) => (minBytes > 0 ? hit / minBytes : 1)
  ratios.achieved = { byteHitRatio: ratio(achieved), offload: offload(upstreamBytes), ofOptimum: of(achieved) }
  for (const name of POLICY_NAMES) {
    const p = createPolicy(name, capacityBytes, { typicalBytes: typical, sessionHorizon: cfg.sessionHorizon, sessionIdleMs: cfg.sessionIdleMs })
    let hit = 0
    let fetched = 0
    for (const r of reads) {
      if (p.observe) {
        // the file (a title, or `contentId/rid`) and index, as the edge's own observe had them
        const at = parseTierKey(r.key)
        if (at !== undefined) p.observe(r.session, at[0], at[1], r.t)
      }
      if (p.has(r.key)) {
        hit += r.bytes
        p.hit(r.key)
      } else {
        p.miss(r.key)
        p.insert(r.key, r.chunkBytes)
        fetched += r.chunkBytes
      }
    }
    ratios[name] = { byteHitRatio: ratio(hit), offload: offload(fetched), ofOptimum: of(hit) }
  }
  ratios.min = { byteHitRatio: ratio(minBytes), offload: offload(min.fetchedBytes), ofOptimum: 1 }
  return { reads: reads.length, bytes, capacityBytes, typicalChunkBytes: typical, partialReads: partialShare(reads), ratios }
}

export async function runReport(config: Readonly<Config>, now = Date.now()): Promise<PolicyReport> {
  const cfg = config.edge
  const { reads, skipped, upstream } = await readLog(cfg.dataDir)
  const capacity = cfg.diskBytes > 0 ? cfg.diskBytes : cfg.ramBytes
  const report: PolicyReport = { at: now, skippedLines: skipped,
    ...analyse(reads, capacity, { sessionHorizon: cfg.sessionHorizonChunks, sessionIdleMs: cfg.sessionIdleMs }, upstream.lines > 0 ? upstream.bytes : null) }
  const tmp = join(cfg.dataDir, `${REPORT_FILE}.tmp`)
  await writeFile(tmp, JSON.stringify(report, null, 2))
  await rename(tmp, join(cfg.dataDir, REPORT_FILE))
  return report
}

export function formatReport(r: PolicyReport): string {
  const lines = [`${r.reads} chunk reads, ${r.bytes} bytes logged; size ${r.capacityBytes} bytes ` +
    `(${Math.floor(r.capacityBytes / r.typicalChunkBytes)} chunks of ${r.typicalChunkBytes} bytes)` +
    (r.skippedLines ? `; ${r.skippedLines} malformed lines skipped` : '')]
  // rows above MIN: possible where MIN is an estimate (partial reads), and for the edge itself, which fetches ahead
  const above = Object.keys(r.ratios).filter(name => name !== 'min' && r.ratios[name]!.ofOptimum > 1 + 1e-9)
  lines.push('policy     byte hit ratio   origin offload   of MIN')
  for (const [name, v] of Object.entries(r.ratios)) {
    const offload = v.offload === null || v.offload === undefined ? 'n/a' : v.offload.toFixed(4)
    lines.push(`${name.padEnd(10)} ${v.byteHitRatio.toFixed(4).padStart(14)}   ${offload.padStart(14)}   ${v.ofOptimum.toFixed(3)}${above.includes(name) ? '*' : ''}`)
  }
  lines.push('byte hit ratio: bytes read from the cache (RAM or disk) / bytes read; origin offload: 1 - bytes fetched upstream / bytes read ' +
    '(achieved: the edge\'s upstream bytes, readahead and prefill included; the others fetch a chunk on each miss)')
  if (r.ratios.achieved?.offload === null) lines.push('achieved offload n/a: this log has no upstream bytes (written by an edge before they were logged)')
  if (r.partialReads > 0) {
    lines.push(`MIN is an estimate here, not the optimum: ${(r.partialReads * 100).toFixed(1)} % of reads read part of a chunk. ` +
      'MIN keeps the chunks needed again soonest, which is best only when every read takes a whole chunk; when a chunk\'s next read ' +
      'takes a few bytes, keeping it is worth less than its size, and a policy that keeps a chunk with a bigger next read instead can beat it.')
  }
  if (above.length > 0) {
    const why = [...(r.partialReads > 0 ? ['MIN is an estimate on these reads (above)'] : []),
      ...(above.includes('achieved') ? ['the edge\'s readahead and prefill fetch chunks before their first read, which MIN, a cache that ' +
        'fetches only on a miss, never does: those hits cost upstream bytes, which the origin offload counts'] : [])]
    if (why.length) lines.push(`* above MIN: ${why.join('; and ')}.`)
  }
  return lines.join('\n')
}

/** The last report for /metrics: re-read only when the file changes, so a scrape costs one stat. */
export function reportProbe(dataDir: string): () => PolicyReportProbe | undefined {
  const file = join(dataDir, REPORT_FILE)
  let mtime = -1
  let last: PolicyReportProbe | undefined
  return () => {
    const st = statSync(file, { throwIfNoEntry: false })
    if (!st) return undefined
    if (st.mtimeMs !== mtime) {
      try {
        const r = JSON.parse(readFileSync(file, 'utf8')) as PolicyReport
        last = { ratios: r.ratios, at: r.at }
        mtime = st.mtimeMs
      } catch {
        return last
      }
    }
    return last
  }
}
