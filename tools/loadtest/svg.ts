/**
 * Charts as inline SVG, so a report is one self-contained HTML file that
 * renders with no network and no script: line charts over time and bar
 * histograms. Values are escaped; sizes are fixed.
 */
export interface Series {
  name: string
  points: [number, number][]
  color: string
}

const W = 640
const H = 220
const PAD = { l: 56, r: 12, t: 24, b: 32 }

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

function ticks(max: number): number[] {
  if (max <= 0) return [0]
  const step = 10 ** Math.floor(Math.log10(max))
  const n = max / step
  const s = n > 5 ? step * 2 : n > 2 ? step : step / 2
  const out: number[] = []
  for (let v = 0; v <= max + 1e-9; v += s) out.push(v)
  return out
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)}k` : Number.isInteger(v) ? String(v) : v.toFixed(2)
}

function frame(title: string, xLabel: string, yLabel: string, xMax: number, yMax: number, body: string): string {
  const x = (v: number) => PAD.l + (v / (xMax || 1)) * (W - PAD.l - PAD.r)
  const y = (v: number) => H - PAD.b - (v / (yMax || 1)) * (H - PAD.t - PAD.b)
  const grid = ticks(yMax).map(v => `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>` +
    `<text x="${PAD.l - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${fmt(v)}</text>`).join('')
  const xt = ticks(xMax).map(v => `<text x="${x(v)}" y="${H - PAD.b + 16}" text-anchor="middle" font-size="11">${fmt(v)}</text>`).join('')
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">` +
    `<text x="${PAD.l}" y="16" font-size="13" font-weight="bold">${esc(title)}</text>${grid}${xt}` +
    `<text x="${W - PAD.r}" y="${H - 4}" text-anchor="end" font-size="11">${esc(xLabel)}</text>` +
    `<text x="12" y="${PAD.t + 4}" font-size="11" transform="rotate(-90 12 ${PAD.t + 4})" text-anchor="end">${esc(yLabel)}</text>` +
    `${body}</svg>`
}

export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const all = series.flatMap(s => s.points)
  const xMax = Math.max(1, ...all.map(p => p[0]))
  const yMax = Math.max(1e-9, ...all.map(p => p[1])) * 1.05
  const x = (v: number) => PAD.l + (v / xMax) * (W - PAD.l - PAD.r)
  const y = (v: number) => H - PAD.b - (v / yMax) * (H - PAD.t - PAD.b)
  const lines = series.map((s, i) =>
    `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.points.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>` +
    `<text x="${W - PAD.r - 4}" y="${PAD.t + 12 + i * 14}" text-anchor="end" font-size="11" fill="${s.color}">${esc(s.name)}</text>`).join('')
  return frame(title, xLabel, yLabel, xMax, yMax, lines)
}

/** Bars for [label-from, count] buckets. */
export function histogram(title: string, xLabel: string, buckets: { from: number; to: number; count: number }[], color = '#3a6ea5'): string {
  const xMax = Math.max(1e-9, ...buckets.map(b => b.to))
  const yMax = Math.max(1, ...buckets.map(b => b.count)) * 1.05
  const x = (v: number) => PAD.l + (v / xMax) * (W - PAD.l - PAD.r)
  const y = (v: number) => H - PAD.b - (v / yMax) * (H - PAD.t - PAD.b)
  const bars = buckets.map(b => `<rect x="${x(b.from).toFixed(1)}" y="${y(b.count).toFixed(1)}" width="${Math.max(1, x(b.to) - x(b.from) - 1).toFixed(1)}" ` +
    `height="${(H - PAD.b - y(b.count)).toFixed(1)}" fill="${color}"><title>${fmt(b.from)}–${fmt(b.to)}: ${b.count}</title></rect>`).join('')
  return frame(title, xLabel, 'count', xMax, yMax, bars)
}

/** Buckets for a sample of values: `n` equal-width bins from 0 to the largest. */
export function bin(values: number[], n = 20): { from: number; to: number; count: number }[] {
  const max = Math.max(0, ...values)
  const w = max > 0 ? max / n : 1
  const out = Array.from({ length: n }, (_, i) => ({ from: i * w, to: (i + 1) * w, count: 0 }))
  for (const v of values) out[Math.min(n - 1, Math.floor(v / w))]!.count++
  return out
}
