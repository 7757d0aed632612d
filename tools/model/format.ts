import { formatBytes } from '../../lib/config/units.js'
import type { Figures, ModelResult } from './report.js'

/**
 * The text a model run prints: one row per steering policy (overall), then
 * the sites (each one when there are few, else the spread across them), then
 * the failures. Ratios with three decimals, bytes in binary units.
 */
const r3 = (x: number) => x.toFixed(3)
const pad = (s: string, n: number) => s.padEnd(n)

const HEAD = `${pad('', 22)}${pad('byte hit', 10)}${pad('edge hit', 10)}${pad('origin', 12)}${pad('peer fill', 12)}${pad('spread', 8)}peak active`

function row(name: string, f: Figures): string {
  return `${pad(name, 22)}${pad(r3(f.byteHitRatio), 10)}${pad(r3(f.edgeHitRatio), 10)}${pad(formatBytes(f.originBytes), 12)}` +
    `${pad(formatBytes(f.peerBytes), 12)}${pad(f.spread.toFixed(2), 8)}${f.peakActiveSpread > 0 ? f.peakActiveSpread.toFixed(2) : 'n/a'}`
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}

export function formatRuns(runs: { name: string; result: ModelResult }[]): string {
  const lines = [HEAD]
  for (const { name, result } of runs) lines.push(row(name, result.overall))
  for (const { name, result } of runs) {
    const r = result
    if (r.sites.length > 1) {
      lines.push('', `${name}: per site`)
      if (r.sites.length <= 12) for (const s of r.sites) lines.push(row(`  ${s.id}`, s))
      else for (const [label, q] of [['min', 0], ['median', 0.5], ['max', 0.999]] as const) {
        const pick = (k: keyof Figures) => quantile(r.sites.map(s => s[k]), q)
        lines.push(`  ${pad(label, 8)} byte hit ${r3(pick('byteHitRatio'))}  edge hit ${r3(pick('edgeHitRatio'))}  origin ${formatBytes(pick('originBytes'))}  spread ${pick('spread').toFixed(2)}  peak active ${pick('peakActiveSpread').toFixed(2)}  (each column on its own)`)
      }
    }
    for (const f of r.failures) {
      lines.push('', `${name}: ${f.label} at ${f.atMin.toFixed(0)} min (judged at site ${f.site})`,
        `  moved: ${f.movedSessions} active sessions${f.keysMoved === null ? '' : `, ${f.keysMoved} affinity keys`}; ` +
        `${(100 * f.trafficShareBefore).toFixed(1)} % of ${f.label.startsWith('edge') ? 'the site\'s' : `its and ${f.site}'s`} bytes in the hour before; ` +
        `${f.site} read ${f.loadAfter.toFixed(2)}× as many bytes in the hour after`,
        `  byte hit ratio ${r3(f.hitBefore)} in the hour before, worst window ${r3(f.hitWorst)} (dip ${(100 * f.dip).toFixed(1)} points), ` +
        (f.hitSettled === null || f.recoveryMin === null ? 'the run ended before it settled'
          : `settled at ${r3(f.hitSettled)}, within 1 point of it after ${f.recoveryMin.toFixed(0)} min`) +
        `; extra origin egress in the hour after ${formatBytes(f.extraOriginBytes)}`)
    }
  }
  return lines.join('\n') + '\n'
}
