import { Command, InvalidArgumentError, Option } from 'commander'
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fail } from '../../lib/cli.js'
import { configuredUrls, loadConfig } from '../../lib/config/config.js'
import { parseBytes } from '../../lib/config/units.js'
import type { PlayResponse } from '../../client/player.js'
import { DEFAULT_LINKS, parseLinks, type LinkShare } from './abr-viewers.js'
import { httpMode } from './http-mode.js'
import { playersMode, type Scenario } from './players-mode.js'
import { Progress, progressText } from './progress.js'
import { ceilingWarning, ms, originShare, pct, renderHtml, type LoadResult } from './report.js'
import { compare } from './simulate.js'
import { checkTarget, discoverTitles, routerPlay, type Title } from './target.js'
import { catalogChunks, defaultTrace, generateTrace } from './trace.js'

/**
 * `reelcdn loadtest`: what SREs run before a premiere. Every run is bounded in
 * time and in requests, stops by itself, refuses non-loopback targets
 * without --allow-remote, prints a progress line (redrawn on a terminal, plain
 * lines otherwise) and writes result.json and report.html.
 */
const scenariosDir = fileURLToPath(new URL('../../../tools/loadtest/scenarios/', import.meta.url))

function int(name: string, min = 0) {
  return (v: string) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`${name} must be a whole number of at least ${min}.`)
    return Number(v)
  }
}
/** A comma-separated list of percentages, each above 0 and at most 100. */
function percents(name: string) {
  return (v: string) => {
    const out = v.split(',').map(x => x.trim())
    if (out.some(x => !/^[0-9]+(\.[0-9]+)?$/.test(x) || Number(x) <= 0 || Number(x) > 100))
      throw new InvalidArgumentError(`${name} must be percentages above 0 and at most 100, separated by commas, such as 1,5,20.`)
    return out.map(Number)
  }
}
function num(name: string) {
  return (v: string) => {
    const n = Number(v)
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative number.`)
    return n
  }
}
function share(name: string) {
  return (v: string) => {
    const n = num(name)(v)
    if (n > 1) throw new InvalidArgumentError(`${name} must be between 0 and 1.`)
    return n
  }
}
function bytes(v: string): number {
  try { return parseBytes(v) } catch (err) { throw new InvalidArgumentError(`${(err as Error).message}.`) }
}
function byteList(v: string): number[] {
  const out = v.split(',').map(x => bytes(x.trim()))
  if (out.some(n => n < 1)) throw new InvalidArgumentError('every range size must be at least 1 byte.')
  return out
}
function links(v: string): LinkShare[] {
  try { return parseLinks(v) } catch (err) { throw new InvalidArgumentError(`${(err as Error).message}.`) }
}

/** --target: every player reads from that one server; an adaptive title from its master playlist there. */
function targetPlay(target: string, titles: Title[]): (id: string) => Promise<PlayResponse> {
  return async id => {
    const base = `${target}/v1/content/${encodeURIComponent(id)}`
    return { contentId: id, urls: [titles.find(x => x.contentId === id)?.adaptive ? { url: `${base}/master.m3u8`, hls: `${base}/master.m3u8` } : { url: base }] }
  }
}

const list = (v: unknown): string[] => String(v).split(',').map(x => x.trim()).filter(Boolean)

export function loadScenario(nameOrFile: string): Scenario {
  const file = nameOrFile.endsWith('.json') ? nameOrFile : join(scenariosDir, `${nameOrFile}.json`)
  let s: Scenario
  try {
    s = JSON.parse(readFileSync(file, 'utf8')) as Scenario
  } catch (err) {
    throw new InvalidArgumentError(`cannot read scenario ${nameOrFile}: ${(err as Error).message}`)
  }
  for (const k of ['players', 'arrivalS', 'zipf', 'startupS', 'bufferS', 'sessionS', 'completeShare', 'meanWatchedShare', 'seekChance', 'premiereShare'] as const)
    if (typeof s[k] !== 'number' || !(s[k] >= 0)) throw new InvalidArgumentError(`scenario ${nameOrFile}: ${k} must be a non-negative number`)
  if (!Array.isArray(s.bitrates) || s.bitrates.length === 0) throw new InvalidArgumentError(`scenario ${nameOrFile}: bitrates must list at least one { bps, weight }`)
  return s
}

async function save(out: string, r: LoadResult): Promise<void> {
  await mkdir(out, { recursive: true })
  await writeFile(join(out, 'result.json'), JSON.stringify(r, null, 2))
  await writeFile(join(out, 'report.html'), renderHtml(r))
  process.stderr.write(`wrote ${join(out, 'result.json')} and ${join(out, 'report.html')}\n`)
}

/** The premiere is the first title (players-mode.ts); the others keep their popularity order. */
export function premiereFirst<T extends { contentId: string }>(titles: T[], premiere: string | undefined): T[] {
  if (premiere === undefined) return titles
  const i = titles.findIndex(x => x.contentId === premiere)
  if (i < 0) throw new InvalidArgumentError(`--premiere ${premiere} is not among the titles (${titles.map(x => x.contentId).join(', ')})`)
  return [titles[i]!, ...titles.slice(0, i), ...titles.slice(i + 1)]
}

/** The run's summary, printed on stdout at its end. */
export function formatSummary(r: LoadResult): string {
  const lines: string[] = [`${r.mode} ${r.scenario} against ${r.target}: ${r.durationS.toFixed(1)} s`]
  if (r.http) {
    const h = r.http
    lines.push(`requests ${h.requests} (${h.reqPerSec.toFixed(0)}/s), ${h.mbps.toFixed(1)} MB/s`,
      `latency ms p50 ${ms(h.latencyMs.p50)} p90 ${ms(h.latencyMs.p90)} p99 ${ms(h.latencyMs.p99)} max ${ms(h.latencyMs.max)}`,
      `errors ${JSON.stringify(h.errorsByStatus)}`)
  }
  if (r.players) {
    const p = r.players
    lines.push(`sessions ${p.sessions}, failed ${p.failed}`,
      `start-up ms p50 ${p.startupMs.p50.toFixed(0)} p95 ${(p.startupMs.p95 ?? 0).toFixed(0)} p99 ${p.startupMs.p99.toFixed(0)}`,
      `rebuffer ratio ${(100 * p.rebufferRatio).toFixed(2)} %, stalls per session ${p.stallsPerSession.toFixed(2)}, ` +
      `bytes played ${p.bytes}, received ${p.bytesReceived}, cut before start-up ${p.cutBeforeStart ?? 0}`,
      `seeks ${p.seeks ?? 0}, wait ms p50 ${(p.seekWaitMs?.p50 ?? 0).toFixed(0)} p95 ${(p.seekWaitMs?.p95 ?? 0).toFixed(0)} (not stalls)`,
      `bytes from origin: ${pct(originShare(r))} of those received (the origin URL is the players' last resort)`)
    if (p.abr) {
      const a = p.abr
      lines.push(`adaptive viewers ${a.viewers} (links ${Object.entries(a.links).map(([bps, n]) => `${n}x${(Number(bps) / 1e6).toFixed(1)}`).join(' ')} Mb/s): ` +
        `average bitrate ${(a.averageBps / 1e6).toFixed(2)} Mb/s, rung switches ${a.rungSwitchesPerViewer.toFixed(2)} per viewer ` +
        `(${a.rungSwitchesPerMinute.toFixed(2)}/min), server switches ${a.serverSwitches}, trials ${a.trials}, abandons ${a.abandons}, ` +
        `QoE ${a.qoe.toFixed(2)} per segment (linear: Mb/s less changes less 4.3 x stall s)`,
      'time share and bytes per rung: ' + a.rungs.map(g => `${g.name} ${pct(g.share)} ${(g.bytes / 1e6).toFixed(1)} MB`).join(', '))
    }
    if (p.errors?.length) lines.push(`failed sessions' errors: ${p.errors.join('; ')}`)
  }
  if (r.cache) lines.push(`edge byte hit ratio ${r.cache.byteHitRatio === null ? 'n/a' : (100 * r.cache.byteHitRatio).toFixed(1) + ' %'}, ` +
    `origin offload ${r.cache.originOffload === null ? 'n/a' : (100 * r.cache.originOffload).toFixed(1) + ' %'}`)
  if (r.metricsError) lines.push(r.metricsError)
  if (r.generatorCeilingMBps === null) lines.push('generator ceiling not measured (--no-ceiling)')
  else lines.push(`generator ceiling ${r.generatorCeilingMBps.toFixed(1)} MB/s (a result near it is the generator's limit, not the server's)`)
  const warning = ceilingWarning(r)
  if (warning) lines.push(`WARNING: ${warning}`)
  return lines.join('\n') + '\n'
}

function httpCommand(): Command {
  return new Command('http')
    .summary('raw HTTP range load with autocannon')
    .option('-t, --target <url>', 'edge or router base URL (required, unless --config names the edge)')
    .option('--config <file>', 'JSON config file whose edge (edge.host, edge.port) is the default target, e.g. the <data-dir>/cluster.json `reelcdn cluster` writes (default: none)')
    .option('--titles <ids>', 'comma-separated contentIds, most popular first (default: every title of the catalog)')
    .option('--catalog <url>', 'the router whose catalog (/v1/content) lists the titles when --titles is not given; an edge has none (default: the router of --config, else the target)')
    .addOption(new Option('--zipf <s>', 'Zipf exponent of title popularity').default(0.9).argParser(num('--zipf')))
    .addOption(new Option('--range-size <bytes>', 'bytes per request; several, comma-separated: each request draws one').default([1024 * 1024], '1MiB').argParser(byteList))
    .addOption(new Option('--opening-share <p>', 'share of requests at a title\'s first byte').default(0.2).argParser(share('--opening-share')))
    .addOption(new Option('-c, --connections <n>', 'concurrent connections').default(16).argParser(int('--connections', 1)))
    .addOption(new Option('-d, --duration <s>', 'seconds to run').default(10, '10 s').argParser(int('--duration', 1)))
    .addOption(new Option('-n, --requests <n>', 'stop after this many requests').default(1_000_000).argParser(int('--requests', 1)))
    .addOption(new Option('--seed <n>', 'random seed').default(1).argParser(int('--seed')))
    .option('--edge-metrics <urls>', 'comma-separated edge URLs whose /metrics give the byte hit ratio (default: the target)')
    .option('--router-metrics <url>', 'the router whose /metrics give the origin offload (default: the edges\' upstream bytes)')
    .option('--no-ceiling', 'skip measuring the generator\'s own ceiling first')
    .addOption(new Option('--progress-interval <s>', 'seconds between progress lines when stderr is not a terminal').default(5).argParser(num('--progress-interval')))
    .option('-o, --out <dir>', 'where result.json and report.html go', './var/loadtest')
    .option('--allow-remote', 'allow a target that is not on this machine')
    .action(async (o: Record<string, never>) => {
      try {
        const urls = o.config ? configuredUrls(loadConfig({ file: o.config })) : undefined
        o.target ??= urls?.edge as never
        if (!o.target) throw new InvalidArgumentError('give --target (an edge or router URL) or --config (a cluster\'s cluster.json)')
        checkTarget(o.target, Boolean(o.allowRemote))
        const catalog: string = o.catalog ?? urls?.router ?? o.target
        const edges = o.edgeMetrics ? list(o.edgeMetrics) : [o.target]
        for (const u of [...edges, ...(o.routerMetrics ? [o.routerMetrics] : []), catalog]) checkTarget(u, Boolean(o.allowRemote))
        const titles = await discoverTitles(o.target, o.titles ? list(o.titles) : undefined, {}, catalog)
        const line = new Progress(process.stderr, o.progressInterval * 1000)
        const r = await httpMode({ target: o.target, titles, zipf: o.zipf, rangeBytes: o.rangeSize, openingShare: o.openingShare,
          connections: o.connections, durationS: o.duration, requests: o.requests, seed: o.seed, measureCeiling: o.ceiling,
          metrics: { edges, router: o.routerMetrics },
          onTick: p => line.show(progressText('http', { elapsedS: p.elapsedS, durationS: o.duration, rps: p.rps ?? 0, mbps: p.mbps, hitRatioSoFar: p.hitRatioSoFar, offloadSoFar: p.offloadSoFar })) })
        line.show('loadtest http done', true)
        process.stdout.write(formatSummary(r))
        await save(o.out, r)
      } catch (err) {
        fail(err)
      }
    })
}

function playersCommand(): Command {
  return new Command('players')
    .summary('simulated viewers (ABR players for adaptive titles): start-up delay, rebuffering, rungs, byte hit ratio')
    .option('-s, --scenario <name|file>', 'prime-time, premiere, long-tail, or a JSON file', 'prime-time')
    .option('-r, --router <url>', 'router base URL: players ask /v1/play for their URLs (this or --target is required, unless --config names the router)')
    .option('-t, --target <url>', 'or an edge base URL every player reads from directly (this or --router is required)')
    .option('--config <file>', 'JSON config file whose router (router.host, router.port) is the default --router, e.g. the <data-dir>/cluster.json `reelcdn cluster` writes (default: none)')
    .option('--titles <ids>', 'comma-separated contentIds, most popular first (default: the catalog)')
    .option('--premiere <id>', 'the title a scenario\'s premiereShare goes to (default: the first title)')
    .addOption(new Option('-p, --players <n>', 'players (default: the scenario\'s)').argParser(int('--players', 1)))
    .addOption(new Option('-d, --duration <s>', 'seconds to run').default(30, '30 s').argParser(int('--duration', 1)))
    .addOption(new Option('-n, --max-requests <n>', 'stop after the players sent this many requests').default(1_000_000).argParser(int('--max-requests', 1)))
    .addOption(new Option('--speed <x>', 'play this many times faster than real time').default(1).argParser(num('--speed')))
    .addOption(new Option('--seed <n>', 'random seed').default(1).argParser(int('--seed')))
    .addOption(new Option('--links <list>', 'adaptive titles\' viewers: link capacities in Mb/s, each with an optional :weight; ' +
      'each viewer draws one and its reads are paced to it').default(DEFAULT_LINKS, '1.5,4,8,25 Mb/s, equal weights').argParser(links))
    .option('--edge-metrics <urls>', 'comma-separated edge URLs whose /metrics give the byte hit ratio (default: --target, or the edges /v1/play names)')
    .option('--router-metrics <url>', 'the router whose /metrics give the origin offload (default: --router)')
    .option('--no-ceiling', 'skip measuring the generator\'s own ceiling first')
    .addOption(new Option('--progress-interval <s>', 'seconds between progress lines when stderr is not a terminal').default(5).argParser(num('--progress-interval')))
    .option('-o, --out <dir>', 'where result.json and report.html go', './var/loadtest')
    .option('--allow-remote', 'allow targets that are not on this machine')
    .action(async (o: Record<string, never>) => {
      try {
        if (o.router === undefined && o.target === undefined && o.config) o.router = configuredUrls(loadConfig({ file: o.config })).router as never
        const base = o.router ?? o.target
        if (!base) throw new InvalidArgumentError('give --router (players use /v1/play) or --target (players read from one edge)')
        checkTarget(base, Boolean(o.allowRemote))
        const scenario = loadScenario(o.scenario)
        if (o.players !== undefined) scenario.players = o.players
        if (!(o.speed > 0)) throw new InvalidArgumentError('--speed must be above 0')
        const titles = premiereFirst(await discoverTitles(base, o.titles ? list(o.titles) : undefined), o.premiere)
        const play = o.router ? routerPlay(o.router, Boolean(o.allowRemote)) : targetPlay(o.target, titles)
        // the edges whose counters make the hit ratio: given, the target, or those /v1/play names for the top title now
        const edges = o.edgeMetrics ? list(o.edgeMetrics) : o.target ? [o.target]
          : [...new Set((await play(titles[0]!.contentId)).urls.filter(u => u.kind === 'edge').map(u => new URL(u.url).origin))]
        const router: string | undefined = o.routerMetrics ?? o.router
        for (const u of [...edges, ...(router ? [router] : [])]) checkTarget(u, Boolean(o.allowRemote))
        const line = new Progress(process.stderr, o.progressInterval * 1000)
        const r = await playersMode({ scenario, titles, play, durationS: o.duration, speed: o.speed, seed: o.seed, maxRequests: o.maxRequests,
          measureCeiling: o.ceiling, metrics: { edges, router }, links: o.links,
          onTick: p => line.show(progressText('players', { elapsedS: p.elapsedS, durationS: o.duration, active: p.active, done: p.done,
            mbps: p.mbps, hitRatioSoFar: p.hitRatioSoFar, offloadSoFar: p.offloadSoFar })) })
        line.show('loadtest players done', true)
        r.target = base
        process.stdout.write(formatSummary(r))
        await save(o.out, r)
      } catch (err) {
        fail(err)
      }
    })
}

function simulateCommand(): Command {
  return new Command('simulate')
    .summary('replay a seeded video-session trace through each cache policy and MIN')
    .addOption(new Option('--titles <n>', 'catalog size in titles').default(1000).argParser(int('--titles', 1)))
    .addOption(new Option('--sessions <n>', 'viewing sessions').default(8000).argParser(int('--sessions', 1)))
    .addOption(new Option('--zipf <s>', 'Zipf exponent').default(0.9).argParser(num('--zipf')))
    .addOption(new Option('--seed <n>', 'random seed').default(1).argParser(int('--seed')))
    .addOption(new Option('--sizes <percents>', 'cache sizes as % of the catalog, comma-separated').default([1, 5, 20], '1,5,20').argParser(percents('--sizes')))
    .action((o: Record<string, never>) => {
      try {
        const opts = { ...defaultTrace, titles: o.titles, sessions: o.sessions, zipf: o.zipf, seed: o.seed }
        const trace = generateTrace(opts)
        const catalog = catalogChunks(opts)
        process.stdout.write(`trace: ${trace.length} chunk requests over a catalog of ${catalog} chunks (seed ${o.seed})\n` +
          'hit ratio per policy; every request reads a whole chunk of one size and a miss fetches just that chunk, so the origin offload equals it\n')
        for (const pct of o.sizes as number[]) {
          const rows = compare(trace, Math.max(1, Math.round((catalog * pct) / 100)))
          process.stdout.write(`${String(pct).padStart(3)} %  ` + rows.map(r => `${r.policy} ${r.hitRatio.toFixed(3)} (${r.ofOptimum.toFixed(2)}× MIN)`).join('  ') + '\n')
        }
      } catch (err) {
        fail(err)
      }
    })
}

export function loadtestCommand(): Command {
  return new Command('loadtest')
    .summary('load tests that report QoE, byte hit ratio and origin offload')
    .description('Bounded load tests against a reelcdn cluster: raw HTTP load (http), simulated viewers (players), ' +
      'and cache-policy simulation (simulate). Targets must be on this machine unless --allow-remote is given.')
    .addCommand(httpCommand())
    .addCommand(playersCommand())
    .addCommand(simulateCommand())
}
