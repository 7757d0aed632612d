import { Command, InvalidArgumentError, Option } from 'commander'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseBytes } from '../lib/config/units.js'
import { benchWorkspace } from './lib/workspace.js'
import { clockTicks, ensureTools, machine, machineLine } from './lib/tools.js'
import { Wrk } from './lib/wrk.js'
import { summarize, table } from './lib/report.js'
import type { BenchOptions, BenchRow, Figure, Measurement } from './lib/row.js'
import { originRow } from './rows/origin.js'
import { routerRow } from './rows/router.js'
import { edgeRow } from './rows/edge.js'
import { playersRow } from './rows/players.js'
import { policiesRow } from './rows/policies.js'
import { transcodeRow } from './rows/transcode.js'
import { abrHitRow } from './rows/abr-hit.js'
import { fillRow } from './rows/fill.js'
import { tailRow } from './rows/tail.js'
import { steeringRow } from './rows/steering.js'

/**
 * `make bench`: runs the selected rows, each starting its own servers as child
 * processes in a temp dir, prints one table with the machine line, and writes
 * the same figures as JSON to bench/out/. Every child is stopped by PID and the
 * temp dir removed on success, failure, SIGINT or SIGTERM.
 *
 * Rows are modules in bench/rows/: origin (shard vs nginx static), router
 * (ingest with copies=3, reads through the router vs a direct shard read),
 * edge (hits vs nginx proxy_cache, miss time to first byte, peak RSS) and
 * players (QoE of a loadtest scenario through an edge), policies (byte hit
 * ratio of each cache policy against MIN, simulated and on a running edge),
 * transcode (an adaptive ladder per transcode strategy: wall time, CPU per
 * ffmpeg, realtime factor), abr-hit (the edge's byte hit ratio with ABR
 * viewers next to single-file viewers at the same cache size), fill (a cold
 * edge filling a cold title vs one shard and the router's relay, a miss's
 * first byte, a premiere flash crowd), tail (200 viewers walking one hot
 * title in 2 MiB ranges: p50/p99/max and MB/s of the edge next to nginx
 * static and proxy_cache), steering (a site of four small edges through
 * /v1/play, load-only vs content affinity, next to one edge with their cache
 * together: site byte hit ratio, origin bytes, load spread).
 */
const ROWS: BenchRow[] = [originRow, routerRow, edgeRow, fillRow, tailRow, playersRow, policiesRow, transcodeRow, abrHitRow, steeringRow]

const OUT_DIR = fileURLToPath(new URL('../../bench/out/', import.meta.url))

function int(name: string, min: number) {
  return (v: string) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`expected ${name} to be an integer >= ${min}, got ${v}.`)
    return Number(v)
  }
}
function bytes(v: string): number {
  try { return parseBytes(v) } catch (err) { throw new InvalidArgumentError(`${(err as Error).message}.`) }
}

const program = new Command('bench')
  .description('reelcdn benchmarks: each row measures a reelcdn path next to nginx on the same machine, in the same run.\n' +
    'Every option can also be set by its environment variable.')
  .addOption(new Option('--rows <list>', `comma-separated rows to run (${ROWS.map(r => r.name).join(', ')})`).env('BENCH_ROWS').default(ROWS.map(r => r.name).join(',')))
  .addOption(new Option('--seconds <n>', 'measured seconds per server and workload').env('BENCH_SECONDS').argParser(int('seconds', 1)).default(8))
  .addOption(new Option('--warmup <n>', 'unmeasured seconds of load before each measurement').env('BENCH_WARMUP').argParser(int('warmup', 0)).default(1))
  .addOption(new Option('--rounds <n>', 'measure every pair this many times; median and spread are reported').env('BENCH_ROUNDS').argParser(int('rounds', 1)).default(1))
  .addOption(new Option('--threads <n>', 'wrk threads').env('BENCH_THREADS').argParser(int('threads', 1)).default(2))
  .addOption(new Option('--connections <n>', 'wrk connections for range workloads').env('BENCH_CONNECTIONS').argParser(int('connections', 1)).default(16))
  .addOption(new Option('--whole-connections <n>', 'wrk connections for whole-chunk workloads').env('BENCH_WHOLE_CONNECTIONS').argParser(int('whole-connections', 1)).default(8))
  .addOption(new Option('--chunks <n>', 'chunks of data to serve').env('BENCH_CHUNKS').argParser(int('chunks', 1)).default(8))
  .addOption(new Option('--chunk-size <bytes>', 'bytes per chunk').env('BENCH_CHUNK_SIZE').argParser(bytes).default(64 * 1024 ** 2, '64MiB'))
  .addOption(new Option('--range <bytes>', 'bytes per range request').env('BENCH_RANGE').argParser(bytes).default(1024 ** 2, '1MiB'))
  .addOption(new Option('--nginx-workers <n>', 'nginx worker_processes (default: one per core)').env('BENCH_NGINX_WORKERS').argParser(int('nginx-workers', 1)))
  .addOption(new Option('--node-args <args>', 'extra node flags for the reelcdn services, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"').env('BENCH_NODE_ARGS').default(''))
  .addOption(new Option('--workloads <list>', 'workloads: ranges, whole').env('BENCH_WORKLOADS').default('ranges,whole'))
  .addOption(new Option('--origin-variants <list>', 'origin configurations: ram (RAM cache, the default), disk (--memory-cache 0)').env('BENCH_ORIGIN_VARIANTS').default('ram,disk'))
  .addOption(new Option('--ingest-bytes <bytes>', 'bytes the router row ingests (smaller for a quick run, e.g. 256MiB)').env('BENCH_INGEST_BYTES').argParser(bytes).default(2 * 1024 ** 3, '2GiB'))
  .addOption(new Option('--edge-variants <list>', 'edge configurations: ram (RAM tier holds the data), threads (the same with --serve-threads), disk (--ram 0: hits from the disk tier), disk-threads (the same with --serve-threads; not run by default)').env('BENCH_EDGE_VARIANTS').default('ram,threads,disk'))
  .addOption(new Option('--players-scenario <name>', 'players row: scenario in tools/loadtest/scenarios').env('BENCH_PLAYERS_SCENARIO').default('prime-time'))
  .addOption(new Option('--players-seconds <n>', 'players row: seconds of load').env('BENCH_PLAYERS_SECONDS').argParser(int('players-seconds', 1)).default(30))
  .addOption(new Option('--fill-paths <list>', "fill row: edge --fill-path values to measure, e.g. relay,direct (default: none given, the edge's own default)").env('BENCH_FILL_PATHS').default(''))
  .addOption(new Option('--tail-connections <n>', 'tail row: viewers (wrk connections), each reading the hot title in order').env('BENCH_TAIL_CONNECTIONS').argParser(int('tail-connections', 1)).default(200))
  .addOption(new Option('--tail-range <bytes>', 'tail row: bytes per viewer request').env('BENCH_TAIL_RANGE').argParser(bytes).default(2 * 1024 ** 2, '2MiB'))
  .addOption(new Option('--tail-pace <MB/s>', 'tail row: also measure nginx proxy_cache and the edge with every connection paced so that together they ask about this many MB/s (0: not)').env('BENCH_TAIL_PACE').argParser(int('tail-pace', 0)).default(1500))
  .addOption(new Option('--tail-base-cli <path>', "tail row: also measure this build's edge (e.g. the previous build's dist/cli.js) in the same rounds").env('BENCH_TAIL_BASE_CLI'))
  .addOption(new Option('--steering-variants <list>', 'steering row: load (load-only ranking, no site), affinity (content affinity, one owner per title), affinity-hot (and hot titles on more owners), single (one edge with the four edges\' cache)').env('BENCH_STEERING_VARIANTS').default('load,affinity,affinity-hot,single'))
  .addOption(new Option('--cli <path>', "the reelcdn CLI to measure, to compare another build (default: this build's dist/cli.js)").env('BENCH_CLI'))
  .option('--keep', 'keep the temp dir (data, nginx config and logs) for inspection')

async function main(): Promise<void> {
  program.parse()
  const a = program.opts()
  const opts: BenchOptions = {
    seconds: a.seconds, warmupSeconds: a.warmup, rounds: a.rounds, threads: a.threads,
    connections: a.connections, wholeConnections: a.wholeConnections, chunks: a.chunks, chunkSize: a.chunkSize,
    rangeBytes: a.range, nginxWorkers: a.nginxWorkers ?? availableParallelism(),
    nodeArgs: String(a.nodeArgs).split(' ').filter(Boolean),
    workloads: list(a.workloads, ['ranges', 'whole'], 'workload'),
    originVariants: list(a.originVariants, ['ram', 'disk'], 'origin variant'),
    ingestBytes: a.ingestBytes,
    edgeVariants: list(a.edgeVariants, ['ram', 'threads', 'disk', 'disk-threads'], 'edge variant'),
    playersScenario: String(a.playersScenario),
    playersSeconds: a.playersSeconds,
    fillPaths: a.fillPaths ? list(a.fillPaths, ['relay', 'direct'], 'fill path') : [],
    tailConnections: a.tailConnections, tailRangeBytes: a.tailRange, tailPaceMBps: a.tailPace,
    ...(a.tailBaseCli ? { tailBaseCli: String(a.tailBaseCli) } : {}),
    steeringVariants: list(a.steeringVariants, ['load', 'affinity', 'affinity-hot', 'single'], 'steering variant'),
    ...(a.cli ? { cli: String(a.cli) } : {}),
  }
  if (opts.rangeBytes > opts.chunkSize) throw new InvalidArgumentError(`--range (${opts.rangeBytes}) must not exceed --chunk-size (${opts.chunkSize})`)
  const names = String(a.rows).split(',').map(s => s.trim()).filter(Boolean)
  const rows = names.map(n => ROWS.find(r => r.name === n) ?? fail(`unknown row ${n}; rows are ${ROWS.map(r => r.name).join(', ')}`))

  const t0 = Date.now()
  const log = (s: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${s}\n`)
  const { procs, dir, cleanup } = await benchWorkspace('reelcdn-bench-', { keep: a.keep, log })
  // nginx workers run as `nobody` when the bench runs as root: let them walk to the files
  await chmod(dir, 0o755)

  const started = new Date()
  const measurements: Measurement[] = []
  const figures: Figure[] = []
  let m
  try {
    const needs = Object.assign({}, ...rows.map(r => r.needs)) as Record<string, string>
    const tools = await ensureTools(needs, log)
    m = await machine(tools)
    const ticks = await clockTicks()
    const wrk = new Wrk(procs, tools.wrk!, dir, ticks)
    await wrk.init()
    log(`machine: ${machineLine(m)} (load average at start ${m.loadavg})`)
    for (const row of rows) {
      const rowDir = join(dir, row.name)
      await mkdir(rowDir, { recursive: true })
      log(`== ${row.name}: ${row.title}`)
      const figure = (f: Figure) => {
        figures.push(f)
        log(`${f.row}: ${f.name}: ${fmtValue(f.value)} ${f.unit}${f.note ? ` (${f.note})` : ''}`)
      }
      measurements.push(...await row.run({ opts, dir: rowDir, procs, wrk, tools, machine: m, log, figure }))
    }
  } finally {
    await cleanup()
  }

  const lines = summarize(measurements)
  const command = `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim()
  const text = [
    `reelcdn bench, ${started.toISOString()}`,
    `machine: ${machineLine(m)}`,
    `load: ${opts.seconds} s per measurement after ${opts.warmupSeconds} s warm-up, ${opts.rounds} round(s); wrk -t${opts.threads}, ` +
      `-c${opts.connections} for ranges, -c${opts.wholeConnections} for whole chunks; ${opts.chunks} chunks of ${opts.chunkSize} bytes; nginx ${opts.nginxWorkers} workers`,
    'MB/s = 10^6 bytes/s received by wrk (headers included). "vs ref" = this server over the reference measured next to it (nginx; for the router row, the direct shard read).',
    'bytes/CPU = how many more bytes this server sends per CPU-second than nginx (steady under contention, unlike MB/s).',
    'CPU = cores busy during the measurement: the server, wrk, and everything else on the machine (other work sharing it).',
    table(lines),
    '',
    ...figureLines(figures),
    generatorNote(measurements, m.cores, opts.threads),
  ].join('\n')
  process.stdout.write(`${text}\n`)

  await mkdir(OUT_DIR, { recursive: true })
  const stamp = started.toISOString().replace(/[:.]/g, '-')
  const json = JSON.stringify({
    started: started.toISOString(), command, machine: m, options: opts, lines, figures,
    measurements: measurements.map(x => ({ row: x.row, workload: x.workload, server: x.server, round: x.round,
      reference: x.reference?.server, result: x.result })),
  }, null, 2)
  await writeFile(join(OUT_DIR, `bench-${stamp}.json`), json)
  await writeFile(join(OUT_DIR, 'latest.json'), json)
  log(`wrote bench/out/bench-${stamp}.json`)
}

/**
 * How close wrk itself came to its limit. wrk's CPU per MB is measured in
 * every run; if the generator was near its thread count in cores, or the
 * machine was saturated, the figures say more about the machine than about
 * the server, and the note says so.
 */
function generatorNote(ms: Measurement[], cores: number, threads: number): string {
  if (ms.length === 0) return ''
  const top = ms.reduce((a, b) => (b.result.MBps > a.result.MBps ? b : a))
  const perCore = ms.map(x => x.result.MBps / Math.max(x.result.cpu.client, 0.01))
  const minPerCore = Math.min(...perCore)
  const maxClient = Math.max(...ms.map(x => x.result.cpu.client))
  const saturated = ms.filter(x => x.result.cpu.machine > cores * 0.9).length
  return [
    `generator: wrk received ${Math.round(minPerCore)}+ MB per CPU-second in every run; the fastest run (${top.server}, ${top.workload}) ` +
      `took ${top.result.MBps.toFixed(0)} MB/s with wrk using ${top.result.cpu.client.toFixed(2)} cores. ` +
      `wrk never used more than ${maxClient.toFixed(2)} cores (it runs ${threads} threads, so it can use at most ${threads}).`,
    saturated
      ? `${saturated} of ${ms.length} measurements had the machine >90% busy: server and wrk competed for the same ${cores} cores, so absolute figures are machine-bound; compare ratios.`
      : 'the machine had idle CPU in every measurement.',
  ].join('\n')
}

function fmtValue(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)
}

/** Figures that are not wrk runs, one line each, grouped by row. */
function figureLines(fs: Figure[]): string[] {
  const out: string[] = []
  let last = ''
  for (const f of fs) {
    if (f.row !== last) { out.push(`== ${f.row}: other figures`); last = f.row }
    out.push(`  ${f.name}: ${fmtValue(f.value)} ${f.unit}${f.note ? `  (${f.note})` : ''}`)
  }
  if (out.length) out.push('')
  return out
}

function list(v: unknown, allowed: string[], what: string): string[] {
  const items = String(v).split(',').map(s => s.trim()).filter(Boolean)
  for (const i of items) if (!allowed.includes(i)) fail(`unknown ${what} ${i}; expected one of ${allowed.join(', ')}`)
  return items
}

function fail(msg: string): never {
  throw new InvalidArgumentError(msg)
}

main().catch(err => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 1
})
