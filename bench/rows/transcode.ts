import { Command, InvalidArgumentError, Option } from 'commander'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { loadConfig } from '../../lib/config/config.js'
import { makeSample } from '../../tools/sample.js'
import { probeSource } from '../../router/ingest/transcode/probe.js'
import { findTools } from '../../router/ingest/transcode/tools.js'
import { transcode } from '../../router/ingest/transcode/transcode.js'
import { sha256File } from '../../router/ingest/transcode/renditions.js'
import type { Strategy } from '../../router/ingest/transcode/args.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'

/**
 * The transcode row (issue 15): how long a ladder takes to transcode on this
 * machine with each strategy of router/ingest/transcode/args.ts — one ffmpeg
 * decoding the source once into every rung and the audio (split), one ffmpeg
 * per rendition at once (parallel), one after another (sequential) — on the
 * 1-minute sample (`make run`'s single-file sample, 854x480, ladder `sample`)
 * and a longer generated source (1080p test pattern and tone, ladder
 * `default`, every rung).
 *
 * Per strategy: the wall time, the realtime factor (seconds of source per
 * second of wall time), and per ffmpeg process its wall time and CPU
 * seconds. The CPU is exact, not sampled: ffmpeg runs under a shell wrapper
 * whose `times` builtin prints its finished child's user and system time.
 * Sources are generated once into --dir and reused; every run starts from an
 * empty work directory, so nothing is resumed. In `make bench` it runs the
 * sample and 60 s of 1080p; `make bench-transcode` runs it alone with every
 * knob. Figures go in docs/benchmarks.md, "Transcoding".
 */
const run = promisify(execFile)
const STRATEGIES: Strategy[] = ['split', 'parallel', 'sequential']

export interface TranscodeBenchOptions {
  /** 'sample', 'long', or a file path */
  sources: string[]
  strategies: Strategy[]
  preset?: string
  /** ladder for a file path in sources */
  ladder: string
  seconds: number
  height: number
  dir: string
}

export interface JobFigure { outputs: string[]; seconds: number; cpu: number }
export interface StrategyFigure { source: string; ladder: string; strategy: Strategy; seconds: number; cpu: number; realtime: number; jobs: JobFigure[]; sizes: string }

async function longSource(ffmpeg: string, dir: string, seconds: number, height: number): Promise<string> {
  const width = Math.round(height * 16 / 9 / 2) * 2
  const file = join(dir, `long-${seconds}s-${height}p.mp4`)
  if (existsSync(file)) return file
  await run(ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=duration=${seconds}:size=${width}x${height}:rate=25`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`, '-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '8M',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', '+faststart', `${file}.tmp.mp4`], { timeout: 3600_000 })
  await rename(`${file}.tmp.mp4`, file)
  return file
}

/** ffmpeg under a shell that appends each run's arguments and its CPU time (the `times` builtin's children line) to `log`. */
async function timedFfmpeg(dir: string, ffmpeg: string, ffprobe: string): Promise<{ bin: string; log: string }> {
  const bin = join(dir, 'bin')
  await mkdir(bin, { recursive: true })
  const log = join(dir, 'cpu.log')
  // `times` in this shell, not in a pipe's subshell, whose children are not ffmpeg
  await writeFile(join(bin, 'ffmpeg'), `#!/bin/sh\n"${ffmpeg}" "$@"\nrc=$?\ntimes > "${log}.$$"\n` +
    `{ printf '%s\\t' "$*"; tail -n 1 "${log}.$$"; } >> "${log}"\nrm -f "${log}.$$"\nexit $rc\n`)
  await chmod(join(bin, 'ffmpeg'), 0o755)
  await rm(join(bin, 'ffprobe'), { force: true })
  await symlink(ffprobe, join(bin, 'ffprobe'))
  return { bin: join(bin, 'ffmpeg'), log }
}

/** CPU seconds per job, keyed by its outputs, from the wrapper's log lines `args\t<u>m<s>s <u>m<s>s`. */
async function cpuByJob(log: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  const text = await readFile(log, 'utf8').catch(() => '')
  for (const line of text.split('\n')) {
    const [args, times] = line.split('\t')
    const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(times ?? '')
    const outputs = [...(args ?? '').matchAll(/\/([\w-]+)\.mp4\.part/g)].map(x => x[1]!)
    if (m && outputs.length) out.set(outputs.join('+'), Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]))
  }
  return out
}

export async function runTranscodeBench(o: TranscodeBenchOptions, log: (s: string) => void): Promise<{ header: string; figures: StrategyFigure[] }> {
  await mkdir(o.dir, { recursive: true })
  const base = loadConfig({ env: {} })
  const real = await findTools(base.ingest.ffmpeg, log)
  const preset = o.preset ?? base.ingest.preset
  const header = `${cpus()[0]?.model.trim()}, ${cpus().length} cores, ${real.version.split(' Copyright')[0]}, preset ${preset}, load average ${loadavg().map(x => x.toFixed(2)).join(' ')} at the start`
  log(header)
  const wrapped = await timedFfmpeg(o.dir, real.ffmpeg, real.ffprobe)
  const figures: StrategyFigure[] = []
  for (const what of o.sources) {
    if (what === 'long') log(`making (or reusing) ${o.seconds} s of ${o.height}p in ${o.dir}`)
    const [file, ladder] = what === 'sample' ? [(await makeSample(o.dir)).file, 'sample']
      : what === 'long' ? [await longSource(real.ffmpeg, o.dir, o.seconds, o.height), 'default'] : [what, o.ladder]
    const source = await probeSource(real.ffprobe, file)
    const sha256 = await sha256File(file)
    const name = `${what === 'sample' ? 'sample' : what === 'long' ? 'long' : file}: ${source.video.displayWidth}x${source.video.displayHeight}, ${source.video.end.toFixed(0)} s`
    for (const strategy of o.strategies) {
      const workDir = join(o.dir, `work-${strategy}`)
      await rm(workDir, { recursive: true, force: true })
      await rm(wrapped.log, { force: true })
      const settings = loadConfig({ env: {}, overrides: { 'ingest.workDir': workDir, 'ingest.preset': preset, 'ingest.ffmpeg': wrapped.bin } }).ingest
      const tools = await findTools(settings.ffmpeg)
      log(`${name}, ladder ${ladder}, ${strategy}`)
      const r = await transcode({ source, sha256, ladder, settings, tools: { ...tools, version: real.version }, strategy })
      const cpu = await cpuByJob(wrapped.log)
      const jobs = r.jobs.map(j => ({ outputs: j.outputs, seconds: j.seconds, cpu: cpu.get(j.outputs.join('+')) ?? NaN }))
      const f: StrategyFigure = { source: name, ladder, strategy, seconds: r.seconds, cpu: jobs.reduce((a, j) => a + j.cpu, 0),
        realtime: source.video.end / r.seconds, jobs,
        sizes: r.renditions.map(x => `${x.id} ${(x.media.averageBandwidth / 1000).toFixed(0)} kb/s`).join(', ') }
      figures.push(f)
      log(formatFigure(f))
      await r.workDir.clear()
    }
  }
  return { header, figures }
}

export function formatFigure(f: StrategyFigure): string {
  return [`${f.strategy}: ${f.seconds.toFixed(1)} s wall, ${f.realtime.toFixed(2)}x real time, ${f.cpu.toFixed(1)} s CPU (${(f.cpu / f.seconds).toFixed(2)} cores busy)`,
    ...f.jobs.map(j => `  ffmpeg ${j.outputs.join('+').padEnd(30)} ${j.seconds.toFixed(1).padStart(6)} s wall ${j.cpu.toFixed(1).padStart(7)} s CPU`),
    `  average rates: ${f.sizes}`].join('\n')
}

export function formatTable(figures: readonly StrategyFigure[]): string {
  const out = ['source                        ladder   strategy    wall s  x real  CPU s  per process (CPU s)']
  for (const f of figures) {
    out.push(`${f.source.padEnd(29)} ${f.ladder.padEnd(8)} ${f.strategy.padEnd(10)} ${f.seconds.toFixed(1).padStart(7)} ${f.realtime.toFixed(2).padStart(6)} ${f.cpu.toFixed(1).padStart(6)}  ` +
      f.jobs.map(j => `${j.outputs.join('+')} ${j.cpu.toFixed(1)}`).join(', '))
  }
  return out.join('\n')
}

export const transcodeRow: BenchRow = {
  name: 'transcode',
  title: 'transcode: a ladder per strategy (split, parallel, sequential) on the 1-minute sample and 60 s of 1080p; wall time, CPU per ffmpeg, realtime factor',
  needs: { ffmpeg: 'ffmpeg', ffprobe: 'ffmpeg' },

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const { figures } = await runTranscodeBench({ sources: ['sample', 'long'], strategies: STRATEGIES, ladder: 'default', seconds: 60, height: 1080,
      dir: join(ctx.dir, 'transcode') }, s => ctx.log(`transcode: ${s.split('\n')[0]}`))
    for (const f of figures) {
      ctx.figure({ row: 'transcode', name: `${f.source}, ladder ${f.ladder}, ${f.strategy}`, value: f.seconds, unit: 's wall',
        note: `${f.realtime.toFixed(2)}x real time, ${f.cpu.toFixed(1)} s CPU in ${f.jobs.length} ffmpeg (${f.jobs.map(j => `${j.outputs.join('+')} ${j.cpu.toFixed(1)} s`).join(', ')})` })
    }
    return []
  },
}

function int(v: string): number {
  if (!/^[0-9]+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected a positive integer.')
  return Number(v)
}

async function main(): Promise<void> {
  const cmd = new Command('bench-transcode')
    .description('transcode time of a ladder per strategy (docs/benchmarks.md, "Transcoding")')
    .addOption(new Option('--sources <list>', 'sample (1 min 480p, ladder sample), long (--seconds of --height p, ladder default), or a file path').env('BENCH_SOURCES').default('sample,long'))
    .addOption(new Option('--strategies <list>', `strategies to compare (${STRATEGIES.join(', ')})`).env('BENCH_STRATEGIES').default(STRATEGIES.join(',')))
    .addOption(new Option('--preset <name>', 'libx264 preset (default: ingest.preset)').env('BENCH_PRESET'))
    .addOption(new Option('--ladder <name>', 'ladder for a file given in --sources').default('default'))
    .addOption(new Option('--seconds <n>', 'length of the long source').env('BENCH_LONG_SECONDS').argParser(int).default(60))
    .addOption(new Option('--height <n>', 'height of the long source (16:9)').argParser(int).default(1080))
    .addOption(new Option('--dir <dir>', 'where generated sources are kept between runs').default(join(tmpdir(), 'reelcdn-bench-transcode')))
  cmd.parse()
  const a = cmd.opts<{ sources: string; strategies: string; preset?: string; ladder: string; seconds: number; height: number; dir: string }>()
  const strategies = a.strategies.split(',').map(s => s.trim()) as Strategy[]
  for (const s of strategies) if (!STRATEGIES.includes(s)) throw new InvalidArgumentError(`unknown strategy ${s}; known: ${STRATEGIES.join(', ')}`)
  const t0 = Date.now()
  const log = (s: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${s}\n`)
  const { header, figures } = await runTranscodeBench({ ...a, sources: a.sources.split(',').map(s => s.trim()), strategies }, log)
  process.stdout.write(`reelcdn bench: transcode, ${new Date().toISOString()}\n# ${header}\n${formatTable(figures)}\n`)
  const out = join(dirname(new URL(import.meta.url).pathname), '..', '..', '..', 'bench', 'out')
  await mkdir(out, { recursive: true })
  await writeFile(join(out, 'transcode-latest.json'), JSON.stringify({ options: a, header, figures }, null, 2))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch(err => {
    process.stderr.write(`bench-transcode failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
