import { readFileSync } from 'node:fs'
import { ConfigError } from '../../lib/errors.js'
import { parseBytes } from '../../lib/config/units.js'
import { defaultTrace, titleLengths } from '../loadtest/trace.js'

/**
 * The deployment a model run simulates: sites of edges, each edge with a
 * cache capacity, a catalog of titles (their lengths in chunks) and the
 * viewers of each site (a weight: the share of sessions that start there).
 * Built from flags (every site alike) or read from a JSON file; either way it
 * is validated here, once, so the engine can trust its integers.
 *
 * Titles are numbered most popular first: the generated trace draws them by
 * Zipf rank, and prefill walks them in that order.
 */
export interface ModelEdge {
  id: string
  capacityChunks: number
  /** the affinity weight: the edge's capacity in bytes, as the router sees it in heartbeats */
  weight: number
}

export interface ModelSite {
  id: string
  viewers: number
  edges: ModelEdge[]
}

export interface Deployment {
  chunkBytes: number
  /** chunks per title, most popular first */
  titles: Int32Array
  sites: ModelSite[]
}

export const LIMITS = { sites: 10_000, edgesPerSite: 255, titles: 10_000_000, chunksPerTitle: 100_000, catalogChunks: 1e9, capacityBytes: 2 ** 50 }
export const CHUNK_BYTES = 64 * 1024 ** 2

/** `12%` of the catalog, or a size (`2TB`, `80GiB`) rounded down to whole chunks. */
export function parseCapacity(v: string | number, catalogChunks: number, chunkBytes: number, what: string): number {
  const s = String(v).trim()
  let chunks: number
  if (s.endsWith('%')) {
    const p = Number(s.slice(0, -1))
    if (s === '%' || !Number.isFinite(p) || p <= 0 || p > 100) throw new ConfigError(`${what}: expected a share of the catalog above 0 % and at most 100 %, got ${JSON.stringify(s)}`)
    chunks = Math.round((catalogChunks * p) / 100)
  } else {
    let bytes: number
    try { bytes = parseBytes(s) } catch (err) { throw new ConfigError(`${what}: ${(err as Error).message}`) }
    if (bytes > LIMITS.capacityBytes) throw new ConfigError(`${what}: ${s} is absurd for one edge (at most 1 PiB)`)
    chunks = Math.floor(bytes / chunkBytes)
  }
  if (chunks < 1) throw new ConfigError(`${what}: ${s} holds no whole chunk (chunks are ${chunkBytes} bytes)`)
  return chunks
}

function intIn(v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new ConfigError(`${what}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`)
  return v
}

export function catalog(count: number, minChunks: number, maxChunks: number, seed: number): Int32Array {
  intIn(count, 1, LIMITS.titles, 'titles')
  intIn(minChunks, 1, LIMITS.chunksPerTitle, 'min chunks per title')
  intIn(maxChunks, minChunks, LIMITS.chunksPerTitle, 'max chunks per title (at least the min)')
  if (count * (minChunks + maxChunks) / 2 > LIMITS.catalogChunks) throw new ConfigError(`a catalog of ${count} titles of ${minChunks}-${maxChunks} chunks is absurd (at most ${LIMITS.catalogChunks} chunks)`)
  return Int32Array.from(titleLengths({ ...defaultTrace, seed, titles: count, minChunks, maxChunks }))
}

const sum = (a: Int32Array) => a.reduce((x, y) => x + y, 0)

export interface UniformOptions {
  sites: number
  edgesPerSite: number
  /** per edge: a share of the catalog (`5%`) or a size */
  edgeCapacity: string
  titles: Int32Array
  chunkBytes?: number
}

/** S sites of E equal edges, equal viewers. */
export function uniformDeployment(o: UniformOptions): Deployment {
  intIn(o.sites, 1, LIMITS.sites, 'sites')
  intIn(o.edgesPerSite, 1, LIMITS.edgesPerSite, 'edges per site')
  const chunkBytes = o.chunkBytes ?? CHUNK_BYTES
  const cap = parseCapacity(o.edgeCapacity, sum(o.titles), chunkBytes, 'edge capacity')
  const sites = Array.from({ length: o.sites }, (_, s) => ({
    id: `s${s}`, viewers: 1,
    edges: Array.from({ length: o.edgesPerSite }, (_, e) => ({ id: `s${s}-e${e}`, capacityChunks: cap, weight: cap * chunkBytes })),
  }))
  return { chunkBytes, titles: o.titles, sites }
}

/**
 * A deployment file:
 * `{ "titles": { "count": 2000, "minChunks": 10, "maxChunks": 40, "seed": 1 } | [chunks, ...],
 *    "sites": [ { "id": "fra", "viewers": 3, "edges": [ { "id": "fra-1", "capacity": "5%" | "2TB" } ] } ] }`
 */
export function loadDeployment(file: string): Deployment {
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  } catch (err) {
    throw new ConfigError(`cannot read deployment ${file}: ${(err as Error).message}`)
  }
  const where = (s: string) => `deployment ${file}: ${s}`
  let titles: Int32Array
  if (Array.isArray(raw.titles)) {
    intIn(raw.titles.length, 1, LIMITS.titles, where('number of titles'))
    titles = Int32Array.from(raw.titles.map((c, i) => intIn(c, 1, LIMITS.chunksPerTitle, where(`titles[${i}]`))))
  } else if (raw.titles && typeof raw.titles === 'object') {
    const c = raw.titles as Record<string, unknown>
    titles = catalog(c.count as number, (c.minChunks ?? 10) as number, (c.maxChunks ?? 40) as number, (c.seed ?? 1) as number)
  } else throw new ConfigError(where('titles must be a list of chunk counts or { count, minChunks, maxChunks }'))
  const chunkBytes = CHUNK_BYTES
  if (!Array.isArray(raw.sites) || raw.sites.length === 0) throw new ConfigError(where('sites must list at least one site'))
  intIn(raw.sites.length, 1, LIMITS.sites, where('number of sites'))
  const total = sum(titles)
  const ids = new Set<string>()
  const sites = (raw.sites as Record<string, unknown>[]).map((s, i) => {
    const id = typeof s.id === 'string' && s.id ? s.id : `s${i}`
    const viewers = s.viewers ?? 1
    if (typeof viewers !== 'number' || !(viewers > 0) || !Number.isFinite(viewers)) throw new ConfigError(where(`site ${id}: viewers must be a positive number`))
    if (!Array.isArray(s.edges) || s.edges.length === 0) throw new ConfigError(where(`site ${id} has no edges (a site needs at least one)`))
    intIn(s.edges.length, 1, LIMITS.edgesPerSite, where(`site ${id}: number of edges`))
    const edges = (s.edges as Record<string, unknown>[]).map((e, j) => {
      const eid = typeof e.id === 'string' && e.id ? e.id : `${id}-e${j}`
      if (ids.has(eid)) throw new ConfigError(where(`edge id ${eid} is used twice`))
      ids.add(eid)
      const cap = parseCapacity(e.capacity as string, total, chunkBytes, where(`edge ${eid} capacity`))
      return { id: eid, capacityChunks: cap, weight: cap * chunkBytes }
    })
    return { id, viewers, edges }
  })
  return { chunkBytes, titles, sites }
}
