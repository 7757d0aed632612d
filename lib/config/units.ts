/** Human sizes for flags: `1048576`, `64MiB`, `1.5GiB`, `10MB` (decimal). */
const UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
}

export function parseBytes(s: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$/.exec(s)
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) throw new Error(`expected a size such as 1048576, 64MiB or 2GB, got ${JSON.stringify(s)}`)
  const n = Math.round(Number(m[1]) * unit)
  if (!Number.isSafeInteger(n)) throw new Error(`size ${JSON.stringify(s)} is too large`)
  return n
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`
}
