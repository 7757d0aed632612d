import { Command, InvalidArgumentError, Option } from 'commander'
import { writeFileSync } from 'node:fs'
import { fail } from '../../lib/cli.js'
import { ConfigError } from '../../lib/errors.js'
import { Progress } from '../../lib/progress.js'
import { formatBytes } from '../../lib/config/units.js'
import { POLICIES } from '../loadtest/simulate.js'
import { catalog, loadDeployment, uniformDeployment, type Deployment } from './deployment.js'
import { Model, STEERINGS, type Failure, type ModelOptions, type Steering } from './engine.js'
import { formatRuns } from './format.js'
import { summarize, type ModelResult } from './report.js'
import { generateSessions, readSessions, writeSessions, type Session } from './sessions.js'

/**
 * `reelcdn model`: a deployment of many sites of edges, simulated from a
 * session trace, to see what steering, peer fill and prefill do at a
 * country's scale before building it (issue 17). Its own command, not a
 * `loadtest simulate` option: simulate replays one cache against MIN, while
 * the model has sites, steering, failures and time, and a dozen options of
 * its own that would only crowd simulate's help. It shares simulate's policy
 * factories and trace model, and lib/affinity.ts with the router and edges.
 */
function int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (v: string) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}.`)
    return Number(v)
  }
}
function num(name: string, min = 0) {
  return (v: string) => {
    const n = Number(v)
    if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number of at least ${min}.`)
    return n
  }
}
function steerings(v: string): Steering[] {
  const out = v.split(',').map(x => x.trim())
  for (const s of out) if (!(STEERINGS as readonly string[]).includes(s)) throw new InvalidArgumentError(`unknown steering ${JSON.stringify(s)}; known: ${STEERINGS.join(', ')}.`)
  return out as Steering[]
}
/** A named value, refused with the list of known ones (commander's own choices hide the default from --help). */
function oneOf(name: string, known: string[]) {
  return (v: string) => {
    if (!known.includes(v)) throw new InvalidArgumentError(`unknown ${name.slice(2)} ${JSON.stringify(v)}; known: ${known.join(', ')}.`)
    return v
  }
}
const collect = (v: string, prev: string[]) => [...prev, v]

/** `s3:1@600` (site s3's edge 1, at minute 600) or `s3@600` (the whole site); a site by id or index. */
export function parseFailure(spec: string, kind: 'edge' | 'site', dep: Deployment): Failure {
  const m = kind === 'edge' ? /^([^:@]+):([0-9]+)@([0-9.]+)$/.exec(spec) : /^([^:@]+)@([0-9.]+)$/.exec(spec)
  if (!m) throw new ConfigError(`--fail-${kind} ${spec}: expected ${kind === 'edge' ? '<site>:<edge index>@<minute>' : '<site>@<minute>'}`)
  let site = dep.sites.findIndex(s => s.id === m[1])
  if (site < 0 && /^[0-9]+$/.test(m[1]!)) site = Number(m[1])
  if (!(site >= 0 && site < dep.sites.length)) throw new ConfigError(`--fail-${kind} ${spec}: no site ${m[1]} (${dep.sites.length} sites)`)
  const edge = kind === 'edge' ? Number(m[2]) : 0
  if (kind === 'edge' && edge >= dep.sites[site]!.edges.length) throw new ConfigError(`--fail-edge ${spec}: site ${dep.sites[site]!.id} has ${dep.sites[site]!.edges.length} edges (indexes from 0)`)
  const atMin = Number(kind === 'edge' ? m[3] : m[2])
  return { kind, site, edge, atMs: atMin * 60_000, label: `${kind} ${dep.sites[site]!.id}${kind === 'edge' ? `:${edge}` : ''}` }
}

/** One run: the model's options (engine.ts) with the deployment and the sessions to replay. */
export interface RunSpec extends Omit<ModelOptions, 'onProgress' | 'onRead'> {
  dep: Deployment
  sessions: () => Iterable<Session>
  total?: number
  progress?: boolean
}

export function runModel(r: RunSpec): ModelResult {
  const label = `model ${r.steering}`
  const owners = r.progress ? new Progress({ label: `${label} owners`, unit: 'items' }) : undefined
  const m = new Model(r.dep, { ...r }, (done, total) => owners?.update(done, `of ${total} (key, site) rankings`))
  const bar = r.progress ? new Progress({ label, total: r.total, unit: 'items' }) : undefined
  m.o.onProgress = (n, t) => bar?.update(n, `sessions, ${(t.reads / 1e6).toFixed(1)} M reads`)
  const tally = m.run(r.sessions())
  bar?.update(m.sessions)
  bar?.finish(`sessions, ${(tally.reads / 1e6).toFixed(1)} M reads`)
  return summarize(m, tally)
}

export function modelCommand(): Command {
  return new Command('model')
    .summary('simulate a deployment of sites of edges: steering, peer fill, prefill, failures')
    .description('Runs S sites × E edges through a session trace (generated, or --trace) and reports byte hit ratio, origin egress, ' +
      'peer-fill bytes and load spread per site and overall, and what edge or site failures cost. See docs/model.md.')
    .option('--deployment <file>', 'JSON file of sites, edges and capacities (docs/model.md) (default: none: --sites × --edges alike)')
    .addOption(new Option('--sites <n>', 'sites').default(1).argParser(int('--sites', 1, 10_000)))
    .addOption(new Option('--edges <n>', 'edges per site').default(4).argParser(int('--edges', 1, 255)))
    .option('--edge-capacity <size|%>', 'each edge\'s cache: a share of the catalog (5%) or a size (2TB)', '5%')
    .addOption(new Option('--titles <n>', 'catalog size in titles, numbered most popular first').default(2000).argParser(int('--titles', 1, 10_000_000)))
    .addOption(new Option('--min-chunks <n>', 'shortest title in 64 MiB chunks').default(10).argParser(int('--min-chunks', 1, 100_000)))
    .addOption(new Option('--max-chunks <n>', 'longest title in 64 MiB chunks').default(40).argParser(int('--max-chunks', 1, 100_000)))
    .addOption(new Option('--sessions <n>', 'viewing sessions').default(100_000).argParser(int('--sessions', 1, 1_000_000_000)))
    .addOption(new Option('--hours <h>', 'simulated hours the arrivals spread over').default(24).argParser(num('--hours', 0.01)))
    .addOption(new Option('--zipf <s>', 'Zipf exponent of title popularity').default(0.9).argParser(num('--zipf')))
    .addOption(new Option('--seed <n>', 'random seed').default(1).argParser(int('--seed')))
    .option('--trace <file>', 'read sessions from this file instead of generating them (format in docs/model.md) (default: none)')
    .option('--save-trace <file>', 'write the generated sessions to this file first, then run from it (default: none)')
    .addOption(new Option('--steering <list>', `comma-separated, each run in turn: ${STEERINGS.join(', ')}`).default(['load', 'affinity', 'affinity+hot'], 'load,affinity,affinity+hot').argParser(steerings))
    .addOption(new Option('--range-chunks <n>', 'affinity key: 0 = the title; n = runs of n chunks of a title').default(0).argParser(int('--range-chunks', 0, 100_000)))
    .addOption(new Option('--bound <c>', 'affinity+hot: no edge takes a session above c × its share of the site\'s active sessions').default(1.25).argParser(num('--bound', 1)))
    .addOption(new Option('--policy <name>', `eviction policy of every edge: ${Object.keys(POLICIES).join(', ')} (the edge's own default is predictive; lru is the fastest to simulate)`).default('lru').argParser(oneOf('--policy', Object.keys(POLICIES))))
    .option('--peer-fill', 'a miss on an edge that does not own the chunk asks the owner at the site (default: off)')
    .addOption(new Option('--prefill <share>', 'share of each edge\'s capacity filled before the run, titles most popular first').default(0).argParser(num('--prefill')))
    .addOption(new Option('--prefill-mode <mode>', 'site: each edge prefills what it owns; each: every edge the same top titles').default('site').argParser(oneOf('--prefill-mode', ['site', 'each'])))
    .addOption(new Option('--fail-edge <site:edge@min>', 'an edge fails at that simulated minute; repeatable').default([], 'none').argParser(collect))
    .addOption(new Option('--fail-site <site@min>', 'a whole site fails; its viewers go to the next site; repeatable').default([], 'none').argParser(collect))
    .addOption(new Option('--chunk-seconds <s>', 'playback time of one chunk').default(60).argParser(num('--chunk-seconds', 0.001)))
    .addOption(new Option('--window <min>', 'minutes per window of the failure time series').default(5).argParser(num('--window', 0.01)))
    .addOption(new Option('--warmup <min>', 'minutes of cache warm-up left out of the totals (default: a fifth of --hours; 0 with --trace)').argParser(num('--warmup')))
    .option('--json <file>', 'also write the figures as JSON (default: none)')
    .action((o: Record<string, never>) => {
      try {
        const started = performance.now()
        const cpu0 = process.cpuUsage()
        if (o.prefill > 1) throw new ConfigError('--prefill is a share of each edge\'s capacity, from 0 to 1')
        if (o.maxChunks < o.minChunks) throw new ConfigError(`--max-chunks (${o.maxChunks}) must be at least --min-chunks (${o.minChunks})`)
        const dep = o.deployment ? loadDeployment(o.deployment)
          : uniformDeployment({ sites: o.sites, edgesPerSite: o.edges, edgeCapacity: o.edgeCapacity, titles: catalog(o.titles, o.minChunks, o.maxChunks, o.seed) })
        const model = { sessions: o.sessions, hours: o.hours, zipf: o.zipf, seed: o.seed }
        let trace: string | undefined = o.trace
        if (o.saveTrace) {
          const n = writeSessions(o.saveTrace, generateSessions(dep, model))
          process.stderr.write(`wrote ${n} sessions to ${o.saveTrace}\n`)
          trace = o.saveTrace
        }
        const failures = [...(o.failEdge as string[]).map(f => parseFailure(f, 'edge', dep)), ...(o.failSite as string[]).map(f => parseFailure(f, 'site', dep))]
        const warmupMs = (o.warmup ?? (trace ? 0 : o.hours * 12)) * 60_000
        const catalogChunks = dep.titles.reduce((a, b) => a + b, 0)
        const edges = dep.sites.reduce((a, s) => a + s.edges.length, 0)
        process.stdout.write(`model: ${dep.sites.length} site(s), ${edges} edges, ${dep.titles.length} titles (${catalogChunks} chunks, ` +
          `${formatBytes(catalogChunks * dep.chunkBytes)}), ${trace ? `sessions from ${trace}` : `${o.sessions} sessions over ${o.hours} h`}, ` +
          `policy ${o.policy}, affinity key ${o.rangeChunks ? `${o.rangeChunks}-chunk ranges` : 'title'}, peer fill ${o.peerFill ? 'on' : 'off'}, ` +
          `prefill ${o.prefill ? `${o.prefill} (${o.prefillMode})` : 'off'}, warm-up ${(warmupMs / 60_000).toFixed(0)} min\n`)
        const runs: { name: string; result: ModelResult }[] = []
        for (const steering of o.steering as Steering[]) {
          const result = runModel({
            dep, sessions: () => (trace ? readSessions(trace, dep) : generateSessions(dep, model)), total: trace ? undefined : o.sessions,
            steering, rangeChunks: o.rangeChunks, bound: o.bound, policy: o.policy, peerFill: Boolean(o.peerFill), prefill: o.prefill,
            prefillSiteAware: o.prefillMode === 'site', failures, chunkMs: o.chunkSeconds * 1000, windowMs: o.window * 60_000, warmupMs, progress: true,
          })
          runs.push({ name: steering, result })
        }
        process.stdout.write(formatRuns(runs))
        if (o.json) writeFileSync(o.json, JSON.stringify({ runs }, null, 2))
        const rss = process.resourceUsage().maxRSS * 1024
        const cpu = process.cpuUsage(cpu0)
        // CPU time beside wall time: on a shared machine the wall time says more about the neighbours
        process.stdout.write(`run time ${((performance.now() - started) / 1000).toFixed(1)} s (CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s), peak RSS ${formatBytes(rss)}` +
          ` (${runs[0]?.result.sessions ?? 0} sessions, ${runs[0]?.result.reads ?? 0} chunk reads per steering)\n`)
      } catch (err) {
        fail(err)
      }
    })
}
