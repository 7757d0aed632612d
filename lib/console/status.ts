import type { Registry } from 'prom-client'

/**
 * The status console's data (docs/console.md): what `GET /status.json`
 * answers on each service, and what the page (lib/console/page.ts) renders.
 * One generic shape for every service, so one page script draws them all:
 * sections of figures, sparkline series and tables. Every value is raw
 * (bytes, ratios 0..1, ms), with a unit the page formats it by; the DOM keeps
 * the raw value in a data- attribute, so a test or a scraper reads the figure
 * the page shows without parsing "1.2 GiB".
 *
 * Figures that a Prometheus metric also carries are read from the service's
 * own registry (`metricValues`), the same objects /metrics prints, so the
 * console and a scrape cannot disagree on where a number comes from.
 */
export type Unit = 'ratio' | 'bytes' | 'bytesPerSec' | 'count' | 'ms' | 'text' | 'state' | 'time'

export interface Figure {
  key: string
  label: string
  value: number | string | boolean | null
  unit: Unit
}

export interface Series {
  key: string
  label: string
  unit: Unit
  /** [ms since the epoch, value]; oldest first */
  points: [number, number][]
}

export interface Column {
  key: string
  label: string
  unit: Unit
}

export interface Table {
  key: string
  columns: Column[]
  rows: Record<string, number | string | boolean | null>[]
  /** what an empty table says */
  empty?: string
}

export interface Section {
  key: string
  title: string
  figures?: Figure[]
  series?: Series[]
  tables?: Table[]
}

export interface ConsoleStatus {
  service: string
  id: string
  at: string
  /** how often the page asks again (ms) */
  refreshMs: number
  sections: Section[]
}

export interface MetricValue {
  labels: Record<string, string | number>
  value: number
}

/** A metric's current values from the registry (its collect hooks run, as for a scrape); [] if not registered. */
export async function metricValues(registry: Registry, name: string): Promise<MetricValue[]> {
  const m = registry.getSingleMetric(name)
  if (m === undefined) return []
  const got = await m.get()
  return got.values.map(v => ({ labels: v.labels as Record<string, string | number>, value: v.value }))
}

/** The sum of the values whose labels include all of `labels`. */
export function sumOf(values: readonly MetricValue[], labels: Record<string, string | readonly string[]> = {}): number {
  let s = 0
  for (const v of values) {
    const ok = Object.entries(labels).every(([k, want]) => (typeof want === 'string' ? v.labels[k] === want : want.includes(String(v.labels[k]))))
    if (ok) s += v.value
  }
  return s
}

export function fig(key: string, label: string, value: Figure['value'], unit: Unit = 'count'): Figure {
  return { key, label, value, unit }
}
