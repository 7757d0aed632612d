import { Command, InvalidArgumentError, Option } from 'commander'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DEFAULT_LINKS, parseLinks, type LinkShare } from '../../tools/loadtest/abr-viewers.js'
import type { Scenario } from '../../tools/loadtest/audience.js'
import { abrId, ingestCatalog, kbps, ladderBytes, makeCatalog, singleId, type Rung } from '../lib/abr-catalog.js'
import { runPass, type PassFigures } from '../lib/abr-hit-pass.js'
import { startCluster } from '../lib/cluster.js'
import type { ProcessGroup } from '../lib/proc.js'
import { benchWorkspace } from '../lib/workspace.js'
import { CLI, startService, type ServiceOptions } from '../lib/reelcdn.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'
import { clockTicks } from '../lib/tools.js'
import { parseBytes } from '../../lib/config/units.js'

/**
 * The abr-hit row (issue 15): the edge's byte hit ratio with ABR viewers
 * next to single-file viewers at the same cache size.
 *
 * One catalog in two forms (bench/lib/abr-catalog.ts): K titles, each an
 * adaptive ladder and a single progressive MP4 at about the top rung's
 * bitrate, made from the same generated source. Both forms are ingested into
 * one local cluster (3 shards and a router, each a child process; copies=1:
 * replication changes nothing the edge sees). Then, per form, an edge of its
 * own starts empty with the same cache: a disk tier of `cacheShare` of the
 * single-file catalog's bytes and a RAM tier of `ramShare` of that (the
 * tiers are inclusive: every fill goes to both, so the disk tier's size is
 * the cache's), prefill off (it fills by time of day and trending, not by
 * these viewers), everything else the default. The same audience plays each
 * form: `reelcdn loadtest players --target <edge>` with one scenario and
 * seed, so every viewer arrives at the same time, picks the title of the
 * same popularity rank (Zipf) and watches as long in both runs; an ABR viewer
 * plays behind a link drawn from the link mix, a single-file viewer reads
 * the file at its bitrate (the load test does not pace progressive viewers).
 *
 * Two passes per edge: a cold pass (seed + 1: another audience of the same
 * shape) fills the empty cache, then the measured warm pass (seed). Each
 * pass's figures come from the edge's and the router's /metrics before and
 * after it (tools/loadtest/edge-counters.ts): byte hit ratio (RAM and disk
 * hits over bytes served), origin offload (1 - router bytes / viewer bytes),
 * upstream bytes, bytes served; from the players: average bitrate on screen
 * (ABR), rebuffer ratio, start-up; and the CPU each process used
 * (bench/lib/abr-hit-pass.ts). Traffic stays on loopback; every process is a
 * child of the bench, stopped by PID. `make bench-abr-hit` runs it alone
 * with every knob; figures go to docs/benchmarks.md, "ABR and single-file
 * viewers through one edge".
 */
export interface AbrHitOptions {
  titles: number
  minS: number
  maxS: number
  rungs: Rung[]
  audioKbps: number
  /** the cache (disk tier) as a share of the single-file catalog's bytes */
  cacheShare: number
  /** the RAM tier as a share of the cache */
  ramShare: number
  viewers: number
  /** mean scenario seconds between arrivals */
  arrivalS: number
  zipf: number
  speed: number
  links: LinkShare[]
  chunkSize: number
  seed: number
}

export const ABR_HIT_DEFAULTS: AbrHitOptions = {
  titles: 8, minS: 30, maxS: 60,
  rungs: [{ id: 'v144', height: 144, kbps: 400 }, { id: 'v240', height: 240, kbps: 1000 }, { id: 'v360', height: 360, kbps: 2500 }],
  audioKbps: 64, cacheShare: 0.3, ramShare: 1 / 3, viewers: 32, arrivalS: 1.5, zipf: 0.9, speed: 2, links: DEFAULT_LINKS,
  // a title here is 10-20 MB where a film is gigabytes: chunks scaled down too, so that the cache holds many more
  // chunks than the viewers have in flight, as a real edge's does (with 1 MiB chunks it held fewer, and thrashed)
  chunkSize: 256 * 1024, seed: 1,
}

export type Form = 'single' | 'abr'

export interface FormResult {
  form: Form
  cold: PassFigures
  warm: PassFigures
}

export interface AbrHitResult {
  options: AbrHitOptions
  header: string
  catalog: { titles: { rank: number; durationS: number; singleBytes: number; ladderBytes: number; renditions: Record<string, number> }[]
    singleBytes: number; ladderBytes: number; singleKbps: number }
  cache: { diskBytes: number; ramBytes: number }
  forms: FormResult[]
}

export interface AbrHitEnv {
  procs: ProcessGroup
  dir: string
  log: (s: string) => void
  service?: ServiceOptions
}

const round = (n: number, to: number) => Math.max(to, Math.floor(n / to) * to)

export async function runAbrHit(o: AbrHitOptions, env: AbrHitEnv): Promise<AbrHitResult> {
  const { procs, dir, log } = env
  const header = `${cpus()[0]?.model.trim()}, ${cpus().length} cores, Node ${process.version}, load average ${loadavg().map(x => x.toFixed(2)).join(' ')} at the start`
  log(header)
  const t0 = performance.now()
  const titles = await makeCatalog(join(dir, 'media'), o, log)
  log(`made ${titles.length} titles in both forms in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  const singleBytes = titles.reduce((a, t) => a + t.single.bytes.length, 0)
  const seconds = titles.reduce((a, t) => a + t.durationS, 0)
  const catalog = {
    titles: titles.map(t => ({ rank: t.rank, durationS: t.durationS, singleBytes: t.single.bytes.length, ladderBytes: ladderBytes(t),
      renditions: Object.fromEntries(t.ladder.map(f => [f.id, f.bytes.length])) })),
    singleBytes, ladderBytes: titles.reduce((a, t) => a + ladderBytes(t), 0), singleKbps: kbps(singleBytes, seconds),
  }
  const diskBytes = round(o.cacheShare * singleBytes, o.chunkSize)
  const cache = { diskBytes, ramBytes: round(o.ramShare * diskBytes, o.chunkSize) }
  log(`catalog: single files ${(singleBytes / 1e6).toFixed(1)} MB (${catalog.singleKbps} kb/s), ladders ${(catalog.ladderBytes / 1e6).toFixed(1)} MB; ` +
    `each edge's cache: disk ${(cache.diskBytes / 1e6).toFixed(1)} MB, RAM ${(cache.ramBytes / 1e6).toFixed(1)} MB`)

  const c = await startCluster(procs, join(dir, 'cluster'), { shards: 3, copies: 1, chunkSize: o.chunkSize, ...(env.service ? { service: env.service } : {}) })
  const forms: FormResult[] = []
  try {
    const t1 = performance.now()
    await ingestCatalog(c.router.url, c.token, titles)
    log(`ingested both forms in ${((performance.now() - t1) / 1000).toFixed(1)} s`)
    const ticks = await clockTicks()
    // the same audience for both forms; bitrates matter to single-file viewers only (they read at the file's rate)
    const scenario: Scenario = { name: 'abr-hit', players: o.viewers, arrivalS: o.arrivalS, zipf: o.zipf, bitrates: [{ bps: catalog.singleKbps * 1000, weight: 1 }],
      startupS: 2, bufferS: 20, sessionS: o.maxS, completeShare: 0.3, meanWatchedShare: 0.5, seekChance: 0, premiereShare: 0 }
    // arrivals are exponential: three times their mean span covers the last one; the run ends sooner when every viewer has left
    const durationS = Math.ceil((3 * o.viewers * o.arrivalS + o.maxS) / o.speed) + 20
    for (const form of ['single', 'abr'] as Form[]) {
      const ids = titles.map(t => (form === 'abr' ? abrId : singleId)(t.rank))
      const edge = await startService(procs, 'edge', 'edge ready', ['--host', '127.0.0.1', '--port', '0', '--upstream', c.router.url,
        '--data-dir', join(dir, `edge-${form}`), '--ram', String(cache.ramBytes), '--disk', String(cache.diskBytes), '--prefill-window', 'never',
        '--log-level', 'info'], { ...env.service, env: { REELCDN_LOG_REQUESTS: 'false' } })
      try {
        const target = { procs, cli: env.service?.cli ?? CLI, ticks, edge, router: c.router, shardPids: c.shards.map(s => s.pid) }
        const pass = async (name: string, seed: number) => {
          const passDir = join(dir, `loadtest-${form}-${name}`)
          await mkdir(passDir, { recursive: true })
          log(`${form}: ${name} pass, ${o.viewers} viewers, seed ${seed}, ${o.speed}x`)
          const f = await runPass(target, { scenario, titles: ids, seed, speed: o.speed, links: o.links, durationS, dir: passDir })
          log(`${form}: ${name}: ${passLine(f)}`)
          return f
        }
        const cold = await pass('cold', o.seed + 1)
        const warm = await pass('warm', o.seed)
        forms.push({ form, cold, warm })
      } finally {
        await edge.stop()
      }
    }
  } finally {
    await c.stop()
  }
  return { options: o, header, catalog, cache, forms }
}

const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)} %`)
const mb = (x: number | null) => (x === null ? 'n/a' : `${(x / 1e6).toFixed(0)} MB`)

/** Each kind of file's byte hit ratio and bytes served: `video 61.0 % of 300 MB, audio 98.0 % of 8 MB`. */
export function kindsText(f: PassFigures): string {
  return Object.entries(f.kinds).map(([k, x]) => `${k} ${pct(x.served > 0 ? x.hits / x.served : null)} of ${mb(x.served)}`).join(', ')
}

export function passLine(f: PassFigures): string {
  return `hit ${pct(f.byteHitRatio)}, offload ${pct(f.originOffload)}, upstream ${mb(f.upstreamBytes)}, served ${mb(f.edgeBytesServed)}, ` +
    `viewers received ${mb(f.viewerBytes)}, by kind ${kindsText(f)}, read ahead unread ${mb(f.unreadAheadBytes)}, ${f.sessions} sessions (${f.failed} failed, ${f.cut} cut), rebuffer ${pct(f.rebufferRatio)}` +
    (f.abr ? `, average ${(f.abr.averageBps / 1e6).toFixed(2)} Mb/s` : '') +
    `, CPU s edge ${f.cpu.edge.toFixed(1)} router ${f.cpu.router.toFixed(1)} shards ${f.cpu.shards.toFixed(1)} loadtest ${f.cpu.loadtest.toFixed(1)}, ${f.wallS.toFixed(0)} s` +
    (f.errors.length ? `; errors: ${f.errors.join('; ')}` : '')
}

/** A ratio, or NaN when either side is unknown or the single-file figure is 0. */
const over = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? NaN : a / b)

export function formatTable(r: AbrHitResult): string {
  const single = r.forms.find(f => f.form === 'single')!
  const abr = r.forms.find(f => f.form === 'abr')!
  // the ratio column only where a ratio means something (not for shares that may be negative or zero)
  const rows: [string, (f: PassFigures) => number | null, (x: number | null) => string, boolean?][] = [
    ['byte hit ratio', f => f.byteHitRatio, pct, true],
    ['origin offload', f => f.originOffload, pct],
    ['upstream bytes', f => f.upstreamBytes, mb, true],
    ['bytes served', f => f.edgeBytesServed, mb, true],
    ['viewers received', f => f.viewerBytes, mb, true],
    ['read ahead, never read', f => f.unreadAheadBytes, mb, true],
    ['rebuffer ratio', f => f.rebufferRatio, pct],
    ['average bitrate, Mb/s', f => (f.abr ? f.abr.averageBps : r.catalog.singleKbps * 1000) / 1e6, x => (x ?? 0).toFixed(2), true],
    ['CPU s: edge', f => f.cpu.edge, x => (x ?? 0).toFixed(1), true],
    ['CPU s: router', f => f.cpu.router, x => (x ?? 0).toFixed(1), true],
    ['CPU s: 3 shards', f => f.cpu.shards, x => (x ?? 0).toFixed(1), true],
    ['CPU s: loadtest', f => f.cpu.loadtest, x => (x ?? 0).toFixed(1), true],
  ]
  const out = [`${'warm pass'.padEnd(24)}${'single-file'.padStart(12)}${'ABR'.padStart(12)}${'ABR/single'.padStart(12)}`]
  for (const [name, get, fmt, ratio] of rows) {
    const a = get(single.warm)
    const b = get(abr.warm)
    out.push(`${name.padEnd(24)}${fmt(a).padStart(12)}${fmt(b).padStart(12)}${ratio ? over(b, a).toFixed(2).padStart(12) : ''}`.trimEnd())
  }
  out.push(`warm pass, byte hit ratio by kind of file: single-file ${kindsText(single.warm)}; ABR ${kindsText(abr.warm)}`)
  out.push(`cold pass: single-file ${passLine(single.cold)}`, `cold pass: ABR ${passLine(abr.cold)}`)
  const rungs = abr.warm.abr?.rungs ?? []
  out.push(`ABR warm pass, time share and bytes per rung: ${rungs.map(g => `${g.name} ${pct(g.share)} ${mb(g.bytes)}`).join(', ')}; ` +
    `links ${Object.entries(abr.warm.abr?.links ?? {}).map(([bps, n]) => `${n}x${Number(bps) / 1e6}`).join(' ')} Mb/s`)
  return out.join('\n')
}

export const abrHitRow: BenchRow = {
  name: 'abr-hit',
  title: 'abr-hit: the edge\'s byte hit ratio with ABR viewers next to single-file viewers at the same cache size',
  needs: { ffmpeg: 'ffmpeg', ffprobe: 'ffmpeg' },

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const service = { nodeArgs: ctx.opts.nodeArgs, ...(ctx.opts.cli ? { cli: ctx.opts.cli } : {}) }
    const r = await runAbrHit(ABR_HIT_DEFAULTS, { procs: ctx.procs, dir: ctx.dir, log: s => ctx.log(`abr-hit: ${s}`), service })
    const o = r.options
    const what = `${o.titles} titles of ${o.minS}-${o.maxS} s, ${o.viewers} viewers at ${o.speed}x, cache ${(100 * o.cacheShare).toFixed(0)} % of the single-file catalog (${(r.cache.diskBytes / 1e6).toFixed(0)} MB), warm pass`
    for (const f of r.forms) {
      const w = f.warm
      const name = f.form === 'abr' ? 'ABR' : 'single-file'
      ctx.figure({ row: 'abr-hit', name: `${name}: edge byte hit ratio`, value: 100 * (w.byteHitRatio ?? NaN), unit: '%', note: `${what}; cold pass ${pct(f.cold.byteHitRatio)}` })
      ctx.figure({ row: 'abr-hit', name: `${name}: origin offload`, value: 100 * (w.originOffload ?? NaN), unit: '%',
        note: `upstream ${mb(w.upstreamBytes)}, served ${mb(w.edgeBytesServed)}, viewers received ${mb(w.viewerBytes)}` })
      ctx.figure({ row: 'abr-hit', name: `${name}: rebuffer ratio`, value: 100 * w.rebufferRatio, unit: '%',
        note: (w.abr ? `average bitrate ${(w.abr.averageBps / 1e6).toFixed(2)} Mb/s; ` : '') + `CPU s edge ${w.cpu.edge.toFixed(1)}, router ${w.cpu.router.toFixed(1)}, shards ${w.cpu.shards.toFixed(1)}, loadtest ${w.cpu.loadtest.toFixed(1)}` })
    }
    const s = r.forms.find(f => f.form === 'single')!.warm
    const a = r.forms.find(f => f.form === 'abr')!.warm
    ctx.figure({ row: 'abr-hit', name: 'byte hit ratio, ABR / single-file', value: over(a.byteHitRatio, s.byteHitRatio), unit: 'x',
      note: `upstream bytes ${over(a.upstreamBytes, s.upstreamBytes).toFixed(2)}x, bytes served ${over(a.edgeBytesServed, s.edgeBytesServed).toFixed(2)}x` })
    return []
  },
}

function positive(name: string, integer: boolean) {
  return (v: string) => {
    const n = Number(v)
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new InvalidArgumentError(`expected ${name} to be a positive ${integer ? 'integer' : 'number'}, got ${v}.`)
    return n
  }
}
function share(name: string) {
  return (v: string) => {
    const n = positive(name, false)(v)
    if (n > 1) throw new InvalidArgumentError(`expected ${name} to be at most 1, got ${v}.`)
    return n
  }
}
function rungs(v: string): Rung[] {
  return v.split(',').map(x => {
    const m = /^(\d+)p:(\d+)$/.exec(x.trim())
    if (!m) throw new InvalidArgumentError(`rung ${JSON.stringify(x)}: expected HEIGHTp:KBPS, e.g. 360p:2500.`)
    return { id: `v${m[1]}`, height: Number(m[1]), kbps: Number(m[2]) }
  })
}

async function main(): Promise<void> {
  const d = ABR_HIT_DEFAULTS
  const cmd = new Command('bench-abr-hit')
    .description('the edge\'s byte hit ratio with ABR viewers next to single-file viewers at the same cache size (docs/benchmarks.md)')
    .addOption(new Option('--titles <n>', 'titles in the catalog').env('BENCH_ABR_HIT_TITLES').argParser(positive('titles', true)).default(d.titles))
    .addOption(new Option('--min-seconds <s>', 'length of the most popular title').argParser(positive('min-seconds', true)).default(d.minS))
    .addOption(new Option('--max-seconds <s>', 'length of the least popular title').argParser(positive('max-seconds', true)).default(d.maxS))
    .addOption(new Option('--rungs <list>', 'video rungs, HEIGHTp:KBPS; the single file is at the top one').argParser(rungs).default(d.rungs, '144p:400,240p:1000,360p:2500'))
    .addOption(new Option('--cache-share <x>', 'the edge\'s cache as a share of the single-file catalog\'s bytes').env('BENCH_ABR_HIT_CACHE_SHARE').argParser(share('cache-share')).default(d.cacheShare))
    .addOption(new Option('--viewers <n>', 'viewers per pass').env('BENCH_ABR_HIT_VIEWERS').argParser(positive('viewers', true)).default(d.viewers))
    .addOption(new Option('--arrival <s>', 'mean scenario seconds between arrivals').argParser(positive('arrival', false)).default(d.arrivalS))
    .addOption(new Option('--zipf <s>', 'Zipf exponent of title popularity').argParser(positive('zipf', false)).default(d.zipf))
    .addOption(new Option('--speed <x>', 'times real time').env('BENCH_ABR_HIT_SPEED').argParser(positive('speed', false)).default(d.speed))
    .addOption(new Option('--links <list>', 'ABR viewers\' link capacities, Mb/s[:weight]').argParser(v => {
      try { return parseLinks(v) } catch (err) { throw new InvalidArgumentError(`${(err as Error).message}.`) }
    }).default(d.links, '1.5,4,8,25'))
    .addOption(new Option('--chunk-size <bytes>', 'the cluster\'s chunk size (a multiple of 64 KiB)').env('BENCH_ABR_HIT_CHUNK_SIZE').argParser(v => {
      try { return parseBytes(v) } catch (err) { throw new InvalidArgumentError(`${(err as Error).message}.`) }
    }).default(d.chunkSize, `${d.chunkSize / 1024}KiB`))
    .addOption(new Option('--seed <n>', 'the warm pass\'s seed (the cold pass takes seed + 1)').argParser(positive('seed', true)).default(d.seed))
    .option('--keep', 'keep the temp dir (media, data, load test results) for inspection')
  cmd.parse()
  const a = cmd.opts<{ titles: number; minSeconds: number; maxSeconds: number; rungs: Rung[]; cacheShare: number; viewers: number; arrival: number
    zipf: number; speed: number; links: LinkShare[]; chunkSize: number; seed: number; keep?: boolean }>()
  if (a.maxSeconds < a.minSeconds) throw new InvalidArgumentError(`expected --max-seconds (${a.maxSeconds}) to be at least --min-seconds (${a.minSeconds})`)
  const o: AbrHitOptions = { ...d, titles: a.titles, minS: a.minSeconds, maxS: a.maxSeconds, rungs: a.rungs, cacheShare: a.cacheShare, viewers: a.viewers,
    arrivalS: a.arrival, zipf: a.zipf, speed: a.speed, links: a.links, chunkSize: a.chunkSize, seed: a.seed }
  const t0 = Date.now()
  const log = (s: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${s}\n`)
  const { procs, dir, cleanup } = await benchWorkspace('reelcdn-abr-hit-', { keep: a.keep, log })
  const started = new Date().toISOString()
  let r: AbrHitResult
  try {
    r = await runAbrHit(o, { procs, dir, log })
  } finally {
    await cleanup()
  }
  const end = `load average ${loadavg().map(x => x.toFixed(2)).join(' ')} at the end`
  process.stdout.write(`reelcdn bench: abr-hit, ${started}\n# ${r.header}; ${end}\n` +
    `# catalog: ${o.titles} titles of ${o.minS}-${o.maxS} s; single files ${(r.catalog.singleBytes / 1e6).toFixed(1)} MB at ${r.catalog.singleKbps} kb/s, ` +
    `ladders (${o.rungs.map(x => `${x.id} ${x.kbps}k`).join(', ')}, a${o.audioKbps}) ${(r.catalog.ladderBytes / 1e6).toFixed(1)} MB; ` +
    `cache: disk ${(r.cache.diskBytes / 1e6).toFixed(1)} MB, RAM ${(r.cache.ramBytes / 1e6).toFixed(1)} MB; chunks ${o.chunkSize / 1024} KiB\n` +
    `# ${o.viewers} viewers per pass, arrivals every ${o.arrivalS} s on average, Zipf ${o.zipf}, ${o.speed}x, ABR links ${o.links.map(l => `${l.bps / 1e6}:${l.weight}`).join(',')} Mb/s\n` +
    `${formatTable(r)}\n`)
  const out = join(dirname(new URL(import.meta.url).pathname), '..', '..', '..', 'bench', 'out')
  await mkdir(out, { recursive: true })
  await writeFile(join(out, 'abr-hit-latest.json'), JSON.stringify({ started, end, ...r }, null, 2))
  log('wrote bench/out/abr-hit-latest.json')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch(err => {
    process.stderr.write(`bench-abr-hit failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
