import { Command, InvalidArgumentError, Option } from 'commander'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { request } from 'undici'
import { loadConfig } from '../../lib/config/config.js'
import { quietLogger } from '../../lib/logger.js'
import { parseBytes } from '../../lib/config/units.js'
import { startEdge } from '../../edge/main.js'
import { POLICY_NAMES, type PolicyName } from '../../edge/policy/policy.js'
import { compare } from '../../tools/loadtest/simulate.js'
import { catalogChunks, defaultTrace, generateTrace, titleLengths, type TraceEvent, type TraceOptions } from '../../tools/loadtest/trace.js'
import { FakeUpstream } from '../../test/helpers/fake-upstream.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'
import { titleBytes } from '../../test/helpers/titles.js'

/**
 * The cache-policy row (issue 8): byte hit ratio of LRU, S3-FIFO, W-TinyLFU,
 * session-aware and Belady's MIN on one seeded trace of video sessions (the
 * loadtest's trace generator: Zipf popularity, early abandonment, seeks), at
 * cache sizes of 1 %, 5 % and 20 % of the catalog.
 *
 * Two measurements per policy and size:
 * - simulated: the trace replayed through the policy classes the edge runs
 *   (tools/loadtest/simulate.ts); MIN is exact here, chunks being equal-size;
 * - measured: a real edge (in this process, RAM tier only, readahead off, so
 *   what is cached is only what the policy chose) serving the trace over HTTP,
 *   one request per chunk read, from the fake upstream test helper holding the
 *   catalog; the byte hit ratio is read from the edge's own
 *   reelcdn_edge_bytes_served_total (hits = ram_hit + disk_hit, as the edge
 *   defines them). Here it equals the origin offload: reads are of whole
 *   chunks, one at a time, with readahead off, so each miss fetches exactly
 *   the chunk it reads and nothing is fetched ahead or shared.
 *
 * The replay is paced: the trace's hours are compressed into `--seconds`, and
 * the edge's session idle timeout is compressed by the same factor, so
 * session-aware retention sees sessions come and go as in the trace. Each
 * session sends its play token's viewer id (`vid`; unsigned: this edge checks
 * no tokens, and a session id is only a hint), as players do, since every
 * request comes from 127.0.0.1. Titles share their bytes (one buffer, so the
 * upstream holds a few MiB, not the catalog): keys differ by contentId.
 *
 * Not a wrk row: its figures are ratios, not throughputs. In `make bench` it
 * runs with the defaults below (seed 1, 30 s per replay, ~10 min) and prints
 * one figure per policy and size; `make bench-policies` runs it alone, with
 * every knob (seeds, sizes, pace), its own table and bench/out/policies-latest.json.
 */
export interface PolicyBenchOptions {
  trace: TraceOptions
  sizes: number[]
  policies: PolicyName[]
  chunkSize: number
  /** wall-clock seconds one HTTP replay of the trace takes (paced) */
  seconds: number
  http: boolean
}

export interface PolicyBenchRow {
  size: number
  capacityChunks: number
  policy: string
  simulated: number
  simulatedOfMin: number
  measured?: number
  measuredOfMin?: number
}

const OUT_DIR = fileURLToPath(new URL('../../../bench/out/', import.meta.url))

export async function runPolicyBench(o: PolicyBenchOptions, log: (s: string) => void): Promise<PolicyBenchRow[]> {
  const trace = generateTrace(o.trace)
  const catalog = catalogChunks(o.trace)
  log(`trace: seed ${o.trace.seed}, ${trace.length} chunk reads, catalog ${catalog} chunks (${o.trace.titles} titles), ` +
    `spanning ${(trace.at(-1)!.t / 3600_000).toFixed(1)} h`)
  const rows: PolicyBenchRow[] = []
  let up: FakeUpstream | undefined
  try {
    if (o.http) up = await catalogUpstream(o)
    for (const size of o.sizes) {
      const cap = Math.max(1, Math.floor(catalog * size))
      const sim = compare(trace, cap)
      const min = sim.find(r => r.policy === 'min')!
      for (const r of sim) if (r.policy === 'min' || o.policies.includes(r.policy as PolicyName))
        rows.push({ size, capacityChunks: cap, policy: r.policy, simulated: r.hitRatio, simulatedOfMin: r.ofOptimum })
      log(`simulated at ${pct(size)} (${cap} chunks): ${sim.map(r => `${r.policy} ${r.hitRatio.toFixed(3)}`).join(', ')}`)
      if (!o.http) continue
      for (const policy of o.policies) {
        const measured = await replayOverHttp(trace, o, up!, policy, cap, log)
        const row = rows.find(r => r.size === size && r.policy === policy)!
        row.measured = measured
        row.measuredOfMin = min.hitRatio > 0 ? measured / min.hitRatio : 1
        log(`measured at ${pct(size)}: ${policy} ${measured.toFixed(3)} (simulated ${row.simulated.toFixed(3)})`)
      }
    }
  } finally {
    await up?.close()
  }
  return rows
}

/** The catalog, every title sharing one buffer's bytes (a prefix of it): the upstream holds one long title's worth of memory. */
async function catalogUpstream(o: PolicyBenchOptions): Promise<FakeUpstream> {
  const lengths = titleLengths(o.trace)
  const shared = titleBytes(Math.max(...lengths) * o.chunkSize, 'policy-bench')
  const up = await FakeUpstream.start()
  for (let i = 0; i < lengths.length; i++) await up.addTitle(`t${i}`, shared.subarray(0, lengths[i]! * o.chunkSize), { chunkSize: o.chunkSize })
  return up
}

async function replayOverHttp(trace: readonly TraceEvent[], o: PolicyBenchOptions, up: FakeUpstream, policy: PolicyName, capChunks: number, log: (s: string) => void): Promise<number> {
  const cs = o.chunkSize
  const lengths = titleLengths(o.trace)
  const dir = await mkdtemp(join(tmpdir(), 'reelcdn-policies-'))
  const span = Math.max(1, trace.at(-1)!.t)
  const scale = span / (o.seconds * 1000)
  try {
    const config = loadConfig({ env: {}, overrides: {
      'edge.port': 0, 'edge.upstream': up.url, 'edge.dataDir': dir, 'cluster.chunkSize': cs,
      'edge.ramBytes': capChunks * cs, 'edge.diskBytes': 0, 'edge.ramPolicy': policy, 'edge.readaheadChunks': 0,
      'edge.sessionIdleMs': Math.max(1, Math.round(180_000 / scale)), 'edge.requestLogBytes': 0,
      'edge.metaMaxEntries': lengths.length + 16, 'http.shutdownGraceMs': 500,
    } })
    const edge = await startEdge(config, { logger: quietLogger('edge'), env: {} })
    try {
      const tokens = new Map<number, string>()
      const t0 = performance.now()
      let behind = 0
      for (const e of trace) {
        const due = t0 + e.t / scale
        const wait = due - performance.now()
        if (wait > 1) await new Promise(r => setTimeout(r, wait))
        else if (wait < -1000) behind++
        let token = tokens.get(e.session)
        if (token === undefined) tokens.set(e.session, token = `${Buffer.from(JSON.stringify({ vid: `viewer${e.session}` })).toString('base64url')}.x`)
        const start = e.index * cs
        const res = await request(`${edge.url}/v1/content/t${e.title}?token=${token}`, { headers: { range: `bytes=${start}-${start + cs - 1}` } })
        await res.body.dump()
        if (res.statusCode !== 206) throw new Error(`edge answered ${res.statusCode} for t${e.title} chunk ${e.index}`)
      }
      if (behind > trace.length / 10) log(`  (${policy}: ${behind} of ${trace.length} reads ran over 1 s late: the machine could not keep the pace; session timing is approximate)`)
      const text = await (await request(`${edge.url}/metrics`)).body.text()
      const served = (result: string) => Number(new RegExp(`^reelcdn_edge_bytes_served_total\\{[^}]*result="${result}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0)
      const all = served('ram_hit') + served('disk_hit') + served('coalesced') + served('miss')
      return all > 0 ? (served('ram_hit') + served('disk_hit')) / all : 0
    } finally {
      await edge.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

export const DEFAULT_SIZES = [0.01, 0.05, 0.2]
const DEFAULT_SECONDS = 30

/** The row in `make bench`: simulated and measured byte hit ratios, each with its share of MIN's, as figures. */
export const policiesRow: BenchRow = {
  name: 'policies',
  title: 'cache policies: byte hit ratio against Belady\'s MIN on a seeded video-session trace, simulated and on a running edge',
  needs: {},

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const o: PolicyBenchOptions = { trace: { ...defaultTrace, seed: 1 }, sizes: DEFAULT_SIZES, policies: [...POLICY_NAMES],
      chunkSize: 64 * 1024, seconds: DEFAULT_SECONDS, http: true }
    const rows = await runPolicyBench(o, s => ctx.log(`policies: ${s}`))
    for (const r of rows) {
      const measured = r.measured === undefined ? '' : `; on a running edge ${(100 * r.measured).toFixed(1)} % (${r.measuredOfMin!.toFixed(3)} of MIN)`
      ctx.figure({ row: 'policies', name: `${r.policy} at ${pct(r.size)} of the catalog`, value: 100 * r.simulated, unit: '% of bytes hit',
        note: r.policy === 'min' ? `the optimum (${r.capacityChunks} chunks)` : `simulated, ${r.simulatedOfMin.toFixed(3)} of MIN${measured}` +
          (r.policy === 'predictive' && r.size === 0.05 ? ' (goal: default policy ≥ 0.9 of MIN at 5 %)' : '') })
    }
    return []
  },
}

function pct(x: number): string {
  return `${+(x * 100).toFixed(2)} %`
}

export function formatRows(rows: readonly PolicyBenchRow[]): string {
  const out = ['size    policy     simulated  of MIN   measured  of MIN']
  for (const r of rows) out.push(`${pct(r.size).padEnd(7)} ${r.policy.padEnd(10)} ${r.simulated.toFixed(3).padStart(9)}  ${r.simulatedOfMin.toFixed(2).padStart(6)}` +
    `   ${r.measured === undefined ? '        -' : r.measured.toFixed(3).padStart(8)}  ${r.measuredOfMin === undefined ? '     -' : r.measuredOfMin.toFixed(2).padStart(6)}`)
  return out.join('\n')
}

function num(name: string, min: number) {
  return (v: string) => {
    const n = Number(v)
    if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`expected ${name} to be a number >= ${min}, got ${v}.`)
    return n
  }
}

async function main(): Promise<void> {
  const cmd = new Command('bench-policies')
    .description('byte hit ratio of each eviction policy and of MIN on a seeded video-session trace, simulated and measured on a running edge')
    .addOption(new Option('--seed <n>', 'trace seed').env('BENCH_SEED').argParser(num('seed', 0)).default(1))
    .addOption(new Option('--sessions <n>', 'viewing sessions in the trace').env('BENCH_SESSIONS').argParser(num('sessions', 1)).default(defaultTrace.sessions))
    .addOption(new Option('--titles <n>', 'titles in the catalog (10-40 chunks each)').env('BENCH_TITLES').argParser(num('titles', 1)).default(defaultTrace.titles))
    .addOption(new Option('--sizes <list>', 'cache sizes as fractions of the catalog').env('BENCH_SIZES').default(DEFAULT_SIZES.join(',')))
    .addOption(new Option('--policies <list>', 'policies to measure').env('BENCH_POLICIES').default(POLICY_NAMES.join(',')))
    .addOption(new Option('--chunk-size <bytes>', 'chunk size on the running edge').env('BENCH_CHUNK_SIZE').argParser(v => parseBytes(v)).default(64 * 1024, '64KiB'))
    .addOption(new Option('--seconds <n>', 'wall-clock seconds per HTTP replay of the trace').env('BENCH_SECONDS').argParser(num('seconds', 1)).default(DEFAULT_SECONDS))
    .option('--sim-only', 'simulation only, no running edge')
  cmd.parse()
  const a = cmd.opts()
  const policies = String(a.policies).split(',').map(s => s.trim()).filter(Boolean)
  for (const p of policies) if (!(POLICY_NAMES as readonly string[]).includes(p)) throw new InvalidArgumentError(`unknown policy ${p}; known: ${POLICY_NAMES.join(', ')}`)
  const o: PolicyBenchOptions = {
    trace: { ...defaultTrace, seed: a.seed, sessions: a.sessions, titles: a.titles },
    sizes: String(a.sizes).split(',').map(Number), policies: policies as PolicyName[], chunkSize: a.chunkSize, seconds: a.seconds, http: !a.simOnly,
  }
  const t0 = Date.now()
  const log = (s: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${s}\n`)
  const rows = await runPolicyBench(o, log)
  const text = `reelcdn bench: cache policies, ${new Date().toISOString()}\n${formatRows(rows)}\n`
  process.stdout.write(text)
  await mkdir(OUT_DIR, { recursive: true })
  await writeFile(join(OUT_DIR, 'policies-latest.json'), JSON.stringify({ options: o, rows }, null, 2))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch(err => {
    process.stderr.write(`bench-policies failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
