import type { ProcessGroup } from './proc.js'
import type { Machine } from './tools.js'
import type { Wrk, WrkResult } from './wrk.js'

/**
 * What a bench row is. `bench/run.ts` installs the tools every selected row
 * needs, gives each row a context (its own temp dir, the shared process group,
 * the load generator), and prints what the rows return. A row starts its own
 * servers and stops them before it returns, so rows never share state.
 */
export interface BenchOptions {
  /** seconds of measured load per server and workload */
  seconds: number
  /** seconds of unmeasured load first (JIT, caches, TCP windows) */
  warmupSeconds: number
  /** measure every pair this many times; the report gives the median and the spread */
  rounds: number
  threads: number
  /** connections for range workloads */
  connections: number
  /** connections for whole-chunk workloads */
  wholeConnections: number
  chunks: number
  chunkSize: number
  rangeBytes: number
  nginxWorkers: number
  /** extra node flags for the services under test, e.g. --cpu-prof */
  nodeArgs: string[]
  /** the reelcdn CLI under test when not this build's (A/B against another build) */
  cli?: string
  /** workload kinds to run: 'ranges', 'whole' */
  workloads: string[]
  /** origin configurations to run: 'ram' (RAM cache, the default), 'disk' (--memory-cache 0) */
  originVariants: string[]
  /** bytes the router row ingests (2 GiB by default: the memory bound is stated for that size) */
  ingestBytes: number
  /** edge configurations to run: 'ram' (RAM tier holds the data), 'disk' (RAM tier 0: hits come from disk) */
  edgeVariants: string[]
  /** players row: the loadtest scenario and how long it runs */
  playersScenario: string
  playersSeconds: number
  /** fill row: edge `--fill-path` values to measure; empty: the edge's default, no flag passed */
  fillPaths: string[]
  /** tail row: viewers (connections) and the bytes of each of their requests */
  tailConnections: number
  tailRangeBytes: number
  /** tail row: the MB/s the paced measurement offers (each connection waits connections × range / this after a response); 0: none */
  tailPaceMBps: number
  /** tail row: another build's dist/cli.js whose edge is measured next to this one's */
  tailBaseCli?: string
  /** steering row: variants to run (load, affinity, single) */
  steeringVariants: string[]
}

export interface BenchContext {
  opts: BenchOptions
  /** a temp dir of the row's own, removed after the bench */
  dir: string
  procs: ProcessGroup
  wrk: Wrk
  tools: Record<string, string>
  machine: Machine
  log(msg: string): void
  /** a figure that is not a wrk run (ingest MB/s, peak RSS, time to first byte): printed after the table */
  figure(f: Figure): void
}

export interface Figure {
  row: string
  name: string
  value: number
  unit: string
  /** what it is compared to, the goal, or how it was taken */
  note?: string
}

export interface Measurement {
  row: string
  /** e.g. '1 MiB ranges' */
  workload: string
  /** e.g. 'nginx', 'origin, RAM cache' */
  server: string
  round: number
  result: WrkResult
  /** the measurement this one is compared to (same run, measured next to it) */
  reference?: Measurement
  note?: string
}

export interface BenchRow {
  name: string
  title: string
  /** command → the apt package that provides it */
  needs: Record<string, string>
  run(ctx: BenchContext): Promise<Measurement[]>
}

/**
 * A measurement over its reference. `cpuPerByte` is the reference's server
 * CPU per byte over this one's (above 1: this server spends less CPU per byte),
 * which does not depend on how the scheduler shared the cores with other work,
 * unlike throughput: a server with more runnable threads gets a larger share of
 * a contended machine.
 */
export function ratio(m: Measurement): { MBps: number; reqPerSec: number; p99: number; cpuPerByte: number } | undefined {
  const r = m.reference?.result
  if (!r) return undefined
  const perByte = (x: WrkResult) => x.cpu.server / x.MBps
  return { MBps: m.result.MBps / r.MBps, reqPerSec: m.result.reqPerSec / r.reqPerSec, p99: m.result.latencyMs.p99 / r.latencyMs.p99,
    cpuPerByte: perByte(r) / perByte(m.result) }
}
