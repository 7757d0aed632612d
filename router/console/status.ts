import type { Registry } from 'prom-client'
import type { Config } from '../../lib/config/config.js'
import { fig, metricValues, sumOf, type ConsoleStatus, type Section } from '../../lib/console/status.js'
import { intervals, SampleRing } from '../../lib/console/samples.js'
import type { Cluster } from '../cluster/cluster.js'
import { clusterView } from '../cluster/cluster-view.js'
import type { Repairer } from '../repair/repair.js'
import type { EdgeRegistry } from '../playback/edge-registry.js'
import type { Trending } from '../playback/trending.js'
import type { Catalog } from '../playback/catalog.js'
import type { Ingestor } from '../ingest/ingest.js'

/**
 * The router's status console figures (`GET /status.json`, docs/console.md),
 * from what the router already holds: the shards as GET /v1/cluster shows
 * them (health after hysteresis, usage and chunk counts from the last health
 * check, the newest repair pass and the one running), the edges from their
 * heartbeats (router/playback/edge-registry.ts, the states
 * reelcdn_router_edges counts), the trending titles of the last hour, and
 * the uploads running now. The last hour's rates (bytes to clients, ingest
 * and repair bytes) are differences of the registry's counters sampled every
 * 10 s (lib/console/samples.ts).
 */
export interface RouterConsoleDeps {
  config: Readonly<Config>
  registry: Registry
  cluster: Cluster
  repairer: Repairer
  edges: EdgeRegistry
  trending: Trending
  catalog: Catalog
  ingestor: Ingestor
  id: () => string
}

type Key = 'served' | 'ingest' | 'repair'

export class RouterConsole {
  readonly ring: SampleRing<Key>

  constructor(private readonly d: RouterConsoleDeps, everyMs = 10_000) {
    this.ring = new SampleRing<Key>(async () => ({
      served: sumOf(await metricValues(d.registry, 'reelcdn_router_bytes_served_total')),
      ingest: sumOf(await metricValues(d.registry, 'reelcdn_router_ingest_bytes_total')),
      repair: sumOf(await metricValues(d.registry, 'reelcdn_router_repair_bytes_total')),
    }), 360, everyMs)
  }

  async status(now = Date.now()): Promise<ConsoleStatus> {
    const { config, cluster, repairer, edges, trending, catalog, ingestor } = this.d
    const view = clusterView(cluster, repairer, config, { admin: true })
    const samples = await this.ring.withNow(now)
    const c = samples[samples.length - 1]!.v
    const silence = config.router.edgeSilenceMs
    const shards = view.shards.map(s => {
      const cap = s.usage?.capacityBytes ?? null
      return { id: s.id, state: s.health.up ? 'up' : 'down', weight: s.weight, storedBytes: s.usage?.storedBytes ?? null,
        capacityBytes: cap, used: cap ? (cap - (s.usage?.freeBytes ?? cap)) / cap : null,
        chunks: s.chunks?.ok ?? null, corrupt: s.chunks?.corrupt ?? null, outstanding: s.outstanding, lastError: s.health.lastError ?? null }
    })
    const edgeRows = edges.list(now).map(e => ({
      id: e.id, site: e.site ?? null, url: e.url,
      state: now - e.lastSeen > silence ? (e.healthy ? 'silent' : 'gone') : e.healthy ? 'live' : 'unhealthy',
      heartbeatAgeMs: now - e.lastSeen, load: e.load, freeBytes: e.freeBytes,
    })).sort((a, b) => (a.id < b.id ? -1 : 1))
    const r = view.replicas
    const p = view.repair.progress
    const last = view.repair.last
    const sections: Section[] = [
      { key: 'shards', title: 'Shards', figures: [
        fig('up', 'Up', shards.filter(s => s.state === 'up').length),
        fig('total', 'Shards', shards.length),
        fig('copies', 'Copies', view.copies),
        fig('storedBytes', 'Chunk bytes stored', shards.reduce((n, s) => n + (s.storedBytes ?? 0), 0), 'bytes'),
      ], tables: [{ key: 'shards', columns: [
        { key: 'id', label: 'Shard', unit: 'text' }, { key: 'state', label: 'Health', unit: 'state' },
        { key: 'storedBytes', label: 'Stored', unit: 'bytes' }, { key: 'used', label: 'Disk used', unit: 'ratio' },
        { key: 'chunks', label: 'Chunks', unit: 'count' }, { key: 'corrupt', label: 'Corrupt', unit: 'count' },
        { key: 'outstanding', label: 'In flight', unit: 'count' }, { key: 'lastError', label: 'Last error', unit: 'text' },
      ], rows: shards }] },
      { key: 'replicas', title: 'Replicas and repair', figures: [
        fig('underReplicated', 'Under-replicated chunks', r?.underReplicated ?? null),
        fig('lost', 'Lost chunks', r?.lost ?? null),
        fig('misplaced', 'Misplaced replicas', r?.misplaced ?? null),
        fig('orphans', 'Orphan replicas', r?.orphans ?? null),
        fig('scannedAt', 'Last scan', r ? Date.parse(r.scannedAt) : null, 'time'),
        fig('running', 'Repair pass running', view.repair.running ? 'running' : 'idle', 'state'),
        fig('phase', 'Pass: phase', p?.phase ?? null, 'text'),
        fig('scanned', 'Pass: keys scanned', p?.scanned ?? null),
        fig('estimatedChunks', 'Pass: chunks (estimate)', p?.estimatedChunks ?? null),
        fig('copied', 'Pass: copied', p?.copied ?? null),
        fig('lastFinished', 'Last pass ended', last?.finishedAt ?? null, 'time'),
        fig('lastRanBy', 'Last pass ran by', last?.ranBy ?? null, 'text'),
      ], series: [
        { key: 'repairRate', label: 'Repair copies', unit: 'bytesPerSec', points: intervals(samples, (d, s) => d.repair / s) },
      ] },
      { key: 'edges', title: 'Edges', figures: [
        fig('live', 'Live', edgeRows.filter(e => e.state === 'live').length),
        fig('total', 'Known', edgeRows.length),
      ], tables: [{ key: 'edges', empty: 'no edge has sent a heartbeat', columns: [
        { key: 'id', label: 'Edge', unit: 'text' }, { key: 'site', label: 'Site', unit: 'text' }, { key: 'state', label: 'State', unit: 'state' },
        { key: 'heartbeatAgeMs', label: 'Last heartbeat', unit: 'ms' }, { key: 'load', label: 'Load', unit: 'ratio' },
        { key: 'freeBytes', label: 'Free', unit: 'bytes' }, { key: 'url', label: 'URL', unit: 'text' },
      ], rows: edgeRows }] },
      { key: 'traffic', title: 'Traffic', figures: [
        fig('bytesServed', 'Bytes to clients', c.served, 'bytes'),
        fig('ingestBytes', 'Bytes ingested', c.ingest, 'bytes'),
      ], series: [
        { key: 'throughput', label: 'To clients', unit: 'bytesPerSec', points: intervals(samples, (d, s) => d.served / s) },
        { key: 'ingestRate', label: 'Ingest', unit: 'bytesPerSec', points: intervals(samples, (d, s) => d.ingest / s) },
      ] },
      { key: 'trending', title: 'Trending (last hour)', tables: [{ key: 'trending', empty: 'no plays reported', columns: [
        { key: 'contentId', label: 'Title id', unit: 'text' }, { key: 'title', label: 'Title', unit: 'text' }, { key: 'plays', label: 'Plays', unit: 'count' },
      ], rows: trending.top('1h', now, 10).map(t => ({ contentId: t.contentId, title: catalog.get(t.contentId)?.title ?? null, plays: t.plays })) }] },
      { key: 'ingests', title: 'Ingests in progress', tables: [{ key: 'ingests', empty: 'none', columns: [
        { key: 'contentId', label: 'Title id', unit: 'text' }, { key: 'rendition', label: 'Rendition', unit: 'text' },
        { key: 'ageMs', label: 'Running for', unit: 'ms' }, { key: 'expectedBytes', label: 'Size', unit: 'bytes' },
        { key: 'stored', label: 'Replicas stored', unit: 'count' },
      ], rows: [...ingestor.inProgress].map(i => ({ contentId: i.contentId, rendition: i.rendition, ageMs: now - i.startedAt,
        expectedBytes: i.expectedBytes, stored: i.replicas.stored + i.replicas.resumed })) }] },
    ]
    return { service: 'router', id: this.d.id(), at: new Date(now).toISOString(), refreshMs: this.ring.everyMs, sections }
  }
}
