import { ratio, type Measurement } from './row.js'

/**
 * The printed table and the JSON record. With several rounds, each line shows
 * the median of the rounds, and ratios show their min–max spread: both servers
 * of a pair are measured next to each other in the same run, so the ratio is
 * steadier than either figure on a shared, noisy machine.
 */
export interface Line {
  row: string
  workload: string
  server: string
  rounds: number
  MBps: number
  reqPerSec: number
  p99Ms: number
  errors: number
  cpu: { server: number; client: number; other: number }
  /** server CPU-seconds per GB sent: steadier than MB/s when other work competes for the cores */
  serverCpuPerGB: number
  /** server CPU-microseconds per request: the per-request overhead, for small ranges */
  serverCpuUsPerReq: number
  ratio?: { MBps: number; MBpsMin: number; MBpsMax: number; reqPerSec: number; p99: number
    cpuEfficiency: number; cpuEfficiencyMin: number; cpuEfficiencyMax: number; reference: string }
  note?: string
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export function summarize(ms: Measurement[]): Line[] {
  const groups = new Map<string, Measurement[]>()
  for (const m of ms) {
    const k = `${m.row}\u0000${m.workload}\u0000${m.server}`
    groups.set(k, [...(groups.get(k) ?? []), m])
  }
  const lines: Line[] = []
  for (const g of groups.values()) {
    const first = g[0]!
    const rs = g.map(ratio).filter(r => r !== undefined)
    const errs = (m: Measurement) => Object.values(m.result.errors).reduce((a, b) => a + b, 0)
    lines.push({
      row: first.row, workload: first.workload, server: first.server, rounds: g.length,
      MBps: median(g.map(m => m.result.MBps)),
      reqPerSec: median(g.map(m => m.result.reqPerSec)),
      p99Ms: median(g.map(m => m.result.latencyMs.p99)),
      errors: g.reduce((a, m) => a + errs(m), 0),
      cpu: {
        server: median(g.map(m => m.result.cpu.server)),
        client: median(g.map(m => m.result.cpu.client)),
        other: median(g.map(m => m.result.cpu.other)),
      },
      serverCpuPerGB: median(g.map(m => m.result.cpu.server / (m.result.MBps / 1000))),
      serverCpuUsPerReq: median(g.map(m => m.result.cpu.server / m.result.reqPerSec * 1e6)),
      ...(rs.length ? {
        ratio: {
          MBps: median(rs.map(r => r.MBps)), MBpsMin: Math.min(...rs.map(r => r.MBps)), MBpsMax: Math.max(...rs.map(r => r.MBps)),
          reqPerSec: median(rs.map(r => r.reqPerSec)), p99: median(rs.map(r => r.p99)),
          cpuEfficiency: median(rs.map(r => r.cpuPerByte)), cpuEfficiencyMin: Math.min(...rs.map(r => r.cpuPerByte)),
          cpuEfficiencyMax: Math.max(...rs.map(r => r.cpuPerByte)), reference: first.reference!.server,
        },
      } : {}),
      ...(first.note ? { note: first.note } : {}),
    })
  }
  return lines
}

const f0 = (n: number) => n.toFixed(0)
const f1 = (n: number) => n.toFixed(1)
const f2 = (n: number) => n.toFixed(2)

export function table(lines: Line[]): string {
  const head = ['workload', 'server', 'MB/s', 'req/s', 'p99 ms', 'vs ref: MB/s (spread)', 'req/s', 'p99', 'bytes/CPU (spread)',
    'CPU srv/wrk/other', 'srv CPU s/GB', 'µs/req', 'errors']
  const rows: string[][] = [head]
  let lastRow = ''
  const out: string[] = []
  const flush = () => {
    if (rows.length <= 1) return
    const widths = head.map((_, i) => Math.max(...rows.map(r => r[i]!.length)))
    const right = new Set([2, 3, 4, 6, 7, 10, 11, 12])
    for (const [n, r] of rows.entries()) {
      out.push(r.map((c, i) => right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join('  ').trimEnd())
      if (n === 0) out.push(widths.map(w => '-'.repeat(w)).join('  '))
    }
    rows.length = 1
  }
  for (const l of lines) {
    if (l.row !== lastRow) {
      flush()
      out.push('', `== ${l.row}`)
      lastRow = l.row
    }
    const r = l.ratio
    rows.push([
      l.workload, l.server, f0(l.MBps), f0(l.reqPerSec), f1(l.p99Ms),
      r ? `${f2(r.MBps)}x` + (l.rounds > 1 ? ` (${f2(r.MBpsMin)}-${f2(r.MBpsMax)})` : '') : '',
      r ? `${f2(r.reqPerSec)}x` : '', r ? `${f2(r.p99)}x` : '',
      r ? `${f2(r.cpuEfficiency)}x` + (l.rounds > 1 ? ` (${f2(r.cpuEfficiencyMin)}-${f2(r.cpuEfficiencyMax)})` : '') : '',
      `${f2(l.cpu.server)}/${f2(l.cpu.client)}/${f2(l.cpu.other)}`, f2(l.serverCpuPerGB), f0(l.serverCpuUsPerReq), String(l.errors),
    ])
  }
  flush()
  return out.join('\n')
}
