import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * Every metric is declared here. Each service instance has its own Registry, so
 * tests can run several servers in one process. Labels stay low-cardinality:
 * routes, results and status classes, never a title or chunk id.
 */
export function newRegistry(service: string, processMetrics = true): Registry {
  const registry = new Registry()
  registry.setDefaultLabels({ service })
  if (processMetrics) collectDefaultMetrics({ register: registry })
  return registry
}

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export function httpMetrics(registry: Registry) {
  return {
    requests: new Counter({ name: 'reelcdn_http_requests_total', help: 'HTTP requests answered, by route, method and status class',
      labelNames: ['route', 'method', 'status'] as const, registers: [registry] }),
    duration: new Histogram({ name: 'reelcdn_http_request_duration_seconds', help: 'Time from request to the last byte written, by route',
      labelNames: ['route'] as const, buckets: latencyBuckets, registers: [registry] }),
    inflight: new Gauge({ name: 'reelcdn_http_requests_in_flight', help: 'Requests being answered now', registers: [registry] }),
    aborted: new Counter({ name: 'reelcdn_http_responses_aborted_total', help: 'Responses cut short: the client left or the body failed after the headers',
      labelNames: ['route'] as const, registers: [registry] }),
  }
}
export type HttpMetrics = ReturnType<typeof httpMetrics>

/** What the origin's gauges read when scraped. */
export interface OriginProbes {
  cachedBytes(): number
  stats(): { ok: number; corrupt: number; bytes: number }
  disk(): Promise<{ capacity: number; free: number }>
}

export function originMetrics(registry: Registry, probes: OriginProbes) {
  return {
    chunkReads: new Counter({ name: 'reelcdn_origin_chunk_reads_total', help: 'Chunk reads by result (memory = verified blocks in RAM, disk, corrupt = refused)',
      labelNames: ['result'] as const, registers: [registry] }),
    bytesServed: new Counter({ name: 'reelcdn_origin_bytes_served_total', help: 'Chunk body bytes sent', registers: [registry] }),
    bytesStored: new Counter({ name: 'reelcdn_origin_bytes_stored_total', help: 'Chunk bytes accepted by PUT', registers: [registry] }),
    puts: new Counter({ name: 'reelcdn_origin_chunk_puts_total', help: 'Chunk PUTs by result',
      labelNames: ['result'] as const, registers: [registry] }),
    corruptBlocks: new Counter({ name: 'reelcdn_origin_corrupt_blocks_total', help: 'Checksum blocks that failed verification, on reads or scrubs',
      labelNames: ['found_by'] as const, registers: [registry] }),
    chunks: new Gauge({ name: 'reelcdn_origin_chunks', help: 'Chunks in the index by state',
      labelNames: ['state'] as const, registers: [registry],
      collect() { const s = probes.stats(); this.set({ state: 'ok' }, s.ok); this.set({ state: 'corrupt' }, s.corrupt) } }),
    storedBytes: new Gauge({ name: 'reelcdn_origin_stored_bytes', help: 'Bytes of chunk data held', registers: [registry],
      collect() { this.set(probes.stats().bytes) } }),
    disk: new Gauge({ name: 'reelcdn_origin_disk_bytes', help: 'The data directory\'s filesystem: capacity and bytes free to the shard',
      labelNames: ['kind'] as const, registers: [registry],
      async collect() { const d = await probes.disk(); this.set({ kind: 'capacity' }, d.capacity); this.set({ kind: 'free' }, d.free) } }),
    memoryBytes: new Gauge({ name: 'reelcdn_origin_memory_cache_bytes', help: 'Verified chunk bytes held in RAM', registers: [registry],
      collect() { this.set(probes.cachedBytes()) } }),
    scrubbedBytes: new Counter({ name: 'reelcdn_origin_scrubbed_bytes_total', help: 'Bytes re-verified by the scrubber', registers: [registry] }),
    scrubPasses: new Counter({ name: 'reelcdn_origin_scrub_passes_total', help: 'Complete scrubber passes over every chunk', registers: [registry] }),
    recovered: new Counter({ name: 'reelcdn_origin_recovery_actions_total', help: 'Start-up reconciliation actions',
      labelNames: ['action'] as const, registers: [registry] }),
  }
}
export type OriginMetrics = ReturnType<typeof originMetrics>
