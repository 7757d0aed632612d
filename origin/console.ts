import type { Registry } from 'prom-client'
import { fig, metricValues, sumOf, type ConsoleStatus } from '../lib/console/status.js'
import { intervals, SampleRing } from '../lib/console/samples.js'

/**
 * A shard's status console figures (`GET /status.json`, docs/console.md):
 * its health (ready), usage and chunk counts, integrity (corrupt chunks and
 * blocks, the scrubber's passes), and the last hour's read and write rates,
 * all from the shard's own registry (the objects /metrics prints), the rates
 * from samples every 10 s (lib/console/samples.ts). The figures need the
 * shard token: without one configured they are refused (a missing secret closes).
 */
type Key = 'served' | 'stored'

export class ShardConsole {
  readonly ring: SampleRing<Key>

  constructor(private readonly d: { registry: Registry; id: () => string; ready: () => boolean; lastRepair: () => Record<string, unknown> | null }, everyMs = 10_000) {
    this.ring = new SampleRing<Key>(async () => ({
      served: sumOf(await metricValues(d.registry, 'reelcdn_origin_bytes_served_total')),
      stored: sumOf(await metricValues(d.registry, 'reelcdn_origin_bytes_stored_total')),
    }), 360, everyMs)
  }

  async status(now = Date.now()): Promise<ConsoleStatus> {
    const r = this.d.registry
    const samples = await this.ring.withNow(now)
    const chunks = await metricValues(r, 'reelcdn_origin_chunks')
    const disk = await metricValues(r, 'reelcdn_origin_disk_bytes')
    const capacity = sumOf(disk, { kind: 'capacity' })
    const free = sumOf(disk, { kind: 'free' })
    const last = this.d.lastRepair()
    const finished = typeof last?.finishedAt === 'number' ? last.finishedAt : null
    return { service: 'shard', id: this.d.id(), at: new Date(now).toISOString(), refreshMs: this.ring.everyMs, sections: [
      { key: 'health', title: 'Health and usage', figures: [
        fig('state', 'State', this.d.ready() ? 'up' : 'down', 'state'),
        fig('chunks', 'Chunks', sumOf(chunks, { state: 'ok' })),
        fig('corruptChunks', 'Corrupt chunks', sumOf(chunks, { state: 'corrupt' })),
        fig('storedBytes', 'Chunk bytes stored', sumOf(await metricValues(r, 'reelcdn_origin_stored_bytes')), 'bytes'),
        fig('diskCapacity', 'Disk size', capacity, 'bytes'),
        fig('diskFree', 'Disk free', free, 'bytes'),
        fig('diskUsed', 'Disk used', capacity > 0 ? (capacity - free) / capacity : null, 'ratio'),
        fig('memoryCacheBytes', 'Verified bytes in RAM', sumOf(await metricValues(r, 'reelcdn_origin_memory_cache_bytes')), 'bytes'),
      ] },
      { key: 'integrity', title: 'Integrity', figures: [
        fig('corruptBlocks', 'Corrupt blocks found', sumOf(await metricValues(r, 'reelcdn_origin_corrupt_blocks_total'))),
        fig('scrubPasses', 'Scrub passes', sumOf(await metricValues(r, 'reelcdn_origin_scrub_passes_total'))),
        fig('scrubbedBytes', 'Bytes scrubbed', sumOf(await metricValues(r, 'reelcdn_origin_scrubbed_bytes_total')), 'bytes'),
        fig('lastRepair', 'Last repair pass ended', finished, 'time'),
      ] },
      { key: 'traffic', title: 'Traffic', figures: [
        fig('bytesServed', 'Chunk bytes sent', samples[samples.length - 1]!.v.served, 'bytes'),
        fig('bytesStored', 'Chunk bytes stored by PUT', samples[samples.length - 1]!.v.stored, 'bytes'),
      ], series: [
        { key: 'readRate', label: 'Reads', unit: 'bytesPerSec', points: intervals(samples, (x, s) => x.served / s) },
        { key: 'writeRate', label: 'Writes', unit: 'bytesPerSec', points: intervals(samples, (x, s) => x.stored / s) },
      ] },
    ] }
  }
}
