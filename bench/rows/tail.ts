import { open, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startCluster, type LocalCluster } from '../lib/cluster.js'
import { startNginx, type RunningNginx } from '../lib/nginx.js'
import { waitForLine, type Child } from '../lib/proc.js'
import { startService, type RunningService, serviceOptions } from '../lib/reelcdn.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'
import { edgeQuiet, metric, sample, scrape, until } from '../lib/scrape.js'
import { checkTitle, ingestTitle, TitleData } from '../lib/title.js'

/**
 * The tail under players (issue 16): `--tail-connections` (200) connections on
 * one hot title, each a viewer reading it in order in `--tail-range` (2 MiB)
 * ranges from its own start offset (wrk's walk mode, bench/lib/wrk.ts), so
 * every response is a large hit and the question is how evenly the server
 * shares its sending among the connections: p50, p99 and max latency next to
 * MB/s. A server that sends one response back to back while others wait has a
 * low median and a long tail; a fair one has both close to 200 × 2 MiB over
 * its throughput.
 *
 * Servers, all child processes holding the same title, measured back to back
 * in each round (the order rotates round to round, so none always runs first
 * on a cooler machine):
 *   - nginx static: the title as a file (sendfile from the page cache)
 *   - nginx proxy_cache (`slice 1m`, as the edge row configures it) in front of
 *     the router, warmed: the reference every ratio is taken against
 *   - the edge with its default configuration (the title fits its default RAM tier)
 *   - the edge with `--serve-threads 1`
 *   - the edge with `edge.zeroCopy` false: RAM hits copied into the sockets,
 *     not spliced (lib/net/zero-copy.ts). On loopback spliced pages cost their
 *     reader (wrk, on the same 2 cores) more than copied ones; a `--cli`
 *     build older than 9d594c8 has no `edge.zeroCopy` and refuses the config
 *   - a bare node:http server answering from Buffers (bench/lib/bare-server.ts):
 *     what Node itself reaches on this workload, and the check that wrk is not
 *     the limit (its MB/s and wrk's CPU are in the table)
 * The cluster behind (one shard, copies=1: only the warm-up fills from it) and
 * the warm-up are checked: every chunk read once from each cache against the
 * source's SHA-256, nginx answers HIT, and no edge fills a chunk during a
 * measurement. Then, with `--tail-pace` (1,500 MB/s by default; 0: not),
 * nginx proxy_cache, the default edge and the copying one (and the previous
 * build's) once more in each round with every connection paced
 * (bench/lib/wrk.ts PACE) so that together they ask about that many MB/s:
 * without it each server is asked as much as it answers, and
 * where wrk itself is the limit (1.6 of the 2 cores against proxy_cache) its
 * requests wait in wrk between responses, which lowers that server's load and
 * its measured latency; paced, all answer the same load. `--cli` measures
 * another build (every reelcdn process);
 * `--tail-base-cli` adds the previous build's edge (default configuration)
 * to the same rounds, so the before/after is measured side by side.
 */
const BARE = fileURLToPath(new URL('../lib/bare-server.js', import.meta.url))
const MiB = 1024 ** 2

interface Server {
  key: string
  label: string
  url: string
  pid: number
  edge?: RunningService
}

export const tailRow: BenchRow = {
  name: 'tail',
  title: 'tail: 200 viewers walking one hot title in 2 MiB ranges; p50/p99/max and MB/s, edge vs nginx static and proxy_cache',
  needs: { nginx: 'nginx', wrk: 'wrk' },

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const o = ctx.opts
    const svc = serviceOptions(o)
    let c: LocalCluster | undefined
    let nginx: RunningNginx | undefined
    let bare: Child | undefined
    const edges: RunningService[] = []
    const out: Measurement[] = []
    try {
      c = await startCluster(ctx.procs, join(ctx.dir, 'cluster'), { shards: 1, copies: 1, chunkSize: o.chunkSize, service: svc })
      const hot = new TitleData('bench-tail', o.chunks * o.chunkSize, o.chunkSize)
      if (o.tailRangeBytes > hot.size) throw new Error(`--tail-range (${o.tailRangeBytes}) is larger than the title (${hot.size})`)
      ctx.log(`tail: ingesting ${hot.size / MiB} MiB through the router and writing it as a file for nginx static`)
      await ingestTitle(c.router.url, c.token, hot)
      const staticDir = join(ctx.dir, 'static')
      await mkdir(staticDir, { recursive: true })
      const f = await open(join(staticDir, hot.contentId), 'w')
      try {
        for (let i = 0; i < hot.chunks; i++) await f.write(hot.bytes(i * o.chunkSize, (i + 1) * o.chunkSize - 1))
      } finally {
        await f.close()
      }

      const routerPort = new URL(c.router.url).port
      nginx = await startNginx(ctx.procs, ctx.tools.nginx!, {
        dir: join(ctx.dir, 'nginx'), workers: o.nginxWorkers,
        httpExtra: `  proxy_cache_path ${join(ctx.dir, 'nginx', 'cache')} levels=1:2 keys_zone=reelcdn:32m max_size=${Math.ceil(2 * hot.size / MiB)}m inactive=7d use_temp_path=off;
  upstream reelcdn_router {
    server 127.0.0.1:${routerPort};
    keepalive 32;
  }`,
        serverBody: `    location /static/ {
      alias ${staticDir}/;
    }
    location /v1/content/ {
      slice 1m;
      proxy_cache reelcdn;
      proxy_cache_key $uri$slice_range;
      proxy_set_header Range $slice_range;
      proxy_cache_valid 200 206 7d;
      proxy_cache_lock on;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://reelcdn_router;
      add_header X-Cache-Status $upstream_cache_status;
    }`,
      })
      const path = `/v1/content/${hot.contentId}`
      ctx.log('tail: warming nginx proxy_cache and checking nginx static and proxy_cache')
      await checkTitle('nginx static', `${nginx.url}/static/${hot.contentId}`, hot, hot.chunks)
      await checkTitle('nginx proxy_cache', `${nginx.url}${path}`, hot, hot.chunks)

      const seedFile = join(ctx.dir, 'bare-seed')
      await writeFile(seedFile, hot.seed)
      bare = ctx.procs.spawn('bare node server', process.execPath, [BARE, seedFile, String(hot.size), String(o.chunkSize)])
      const bareUrl = await waitForLine(bare, line => line.includes('"bare server ready"') ? (JSON.parse(line) as { url: string }).url : undefined, 60_000)
      await checkTitle('bare node server', `${bareUrl}${path}`, hot, hot.chunks)

      const servers: Server[] = [
        { key: 'static', label: `nginx ${ctx.machine.nginx} static (sendfile)`, url: nginx.url, pid: nginx.pid },
        { key: 'proxy_cache', label: `nginx ${ctx.machine.nginx} proxy_cache (slice 1m)`, url: nginx.url, pid: nginx.pid },
        { key: 'bare', label: 'bare node:http from Buffers', url: bareUrl, pid: bare.pid },
      ]
      // RAM hits copied into the sockets instead of spliced: on loopback the reader (wrk) shares the 2 cores, and
      // spliced pages cost it more to read than copied ones, a cost a player across a network pays on its own machine
      const copyConfig = join(ctx.dir, 'edge-copy.json')
      await writeFile(copyConfig, JSON.stringify({ edge: { zeroCopy: false } }))
      const variants = [{ key: 'edge', label: 'reelcdn edge, default configuration', args: [] as string[], cli: o.cli },
        { key: 'edge-threads', label: 'reelcdn edge, --serve-threads 1', args: ['--serve-threads', '1'], cli: o.cli },
        { key: 'edge-copy', label: 'reelcdn edge, edge.zeroCopy false', args: ['--config', copyConfig], cli: o.cli }]
      // --tail-base-cli: the previous build's edge (default configuration) measured in the same rounds
      if (o.tailBaseCli) variants.push({ key: 'edge-base', label: 'previous build: reelcdn edge, default configuration', args: [], cli: o.tailBaseCli })
      for (const v of variants) {
        const edge = await startService(ctx.procs, 'edge', 'edge ready', ['--host', '127.0.0.1', '--port', '0', '--upstream', c.router.url,
          '--data-dir', join(ctx.dir, v.key), '--log-level', 'info', ...v.args],
        { nodeArgs: o.nodeArgs, ...(v.cli ? { cli: v.cli } : {}), env: { REELCDN_LOG_REQUESTS: 'false' } })
        edges.push(edge)
        ctx.log(`tail: warming ${v.label}`)
        // twice: a chunk the policy kept out of RAM on its first read is admitted on its second
        await checkTitle(v.label, `${edge.url}${path}`, hot, hot.chunks)
        await checkTitle(v.label, `${edge.url}${path}`, hot, hot.chunks)
        await until(() => edgeQuiet(edge.url), 120_000)
        const ram = await metric(edge.url, 'reelcdn_edge_tier_bytes', 'tier="ram"')
        ctx.figure({ row: 'tail', name: `${v.label}: RAM tier holds`, value: ram / MiB, unit: 'MiB', note: `of the ${hot.size / MiB} MiB title` })
        servers.push({ key: v.key, label: v.label, url: edge.url, pid: edge.pid, edge })
      }

      const load = (s: Server, seconds: number, paceMs = 0) => ({
        url: s.url, prefix: s.key === 'static' ? `/static/${hot.contentId}` : path, title: true, walk: true,
        chunks: hot.chunks, chunkSize: o.chunkSize, rangeBytes: o.tailRangeBytes,
        connections: o.tailConnections, threads: o.threads, seconds, timeoutSeconds: 30, paceMs,
      })
      // paced: each connection waits, on average, as long after a response as all of them would take to ask for the
      // offered MB/s with no latency at all, so every server is offered about the same load (slightly less the slower
      // it answers)
      const paceMs = o.tailPaceMBps > 0 ? o.tailConnections * o.tailRangeBytes / (o.tailPaceMBps * 1e6) * 1000 : 0
      const pacedWorkload = `${o.tailConnections} viewers × ${o.tailRangeBytes / MiB} MiB ranges in order, paced to ${o.tailPaceMBps} MB/s offered`
      const pacedKeys = ['proxy_cache', 'edge', 'edge-copy', ...(o.tailBaseCli ? ['edge-base'] : [])]
      const misses = async () => (await Promise.all(edges.map(e => metric(e.url, 'reelcdn_edge_requests_total', 'result="miss"')))).reduce((a, b) => a + b, 0)
      const missesBefore = await misses()
      const lag: { key: string; p50: number; p99: number; max: number }[] = []
      // an edge's event-loop delay over a measurement, under `key`: prom-client's histogram restarts at every scrape
      const withLag = async <T>(s: Server, key: string, measure: () => Promise<T>): Promise<T> => {
        if (s.edge === undefined) return measure()
        await scrape(s.url)
        const r = await measure()
        const text = await scrape(s.url)
        const ms = (n: string) => 1000 * sample(text, `nodejs_eventloop_lag_${n}_seconds`)
        lag.push({ key, p50: ms('p50'), p99: ms('p99'), max: ms('max') })
        return r
      }
      // the delays measured under `key`: their p99's median and spread, and a note with p50, p99 and max
      const lagOf = (key: string) => {
        const l = lag.filter(x => x.key === key)
        const p99 = spread(l.map(x => x.p99))
        return { p99, note: `p50 ${fmt(spread(l.map(x => x.p50)), 1)}, p99 ${fmt(p99, 1)}, max ${fmt(spread(l.map(x => x.max)), 1)} ms` }
      }
      const workload = `${o.tailConnections} viewers × ${o.tailRangeBytes / MiB} MiB ranges in order`
      for (let round = 1; round <= o.rounds; round++) {
        const order = servers.map((_, i) => servers[(i + round - 1) % servers.length]!)
        const got = new Map<string, Measurement>()
        for (const s of order) {
          if (o.warmupSeconds > 0) await ctx.wrk.run(load(s, o.warmupSeconds), s.pid)
          ctx.log(`tail: ${s.label}, round ${round}`)
          got.set(s.key, { row: 'tail', workload, server: s.label, round, result: await withLag(s, s.key, () => ctx.wrk.run(load(s, o.seconds), s.pid)) })
        }
        const ref = got.get('proxy_cache')!
        for (const s of servers) {
          const m = got.get(s.key)!
          if (s.key !== 'proxy_cache') m.reference = ref
          out.push(m)
        }
        if (paceMs > 0) {
          const paced = new Map<string, Measurement>()
          for (const s of order.filter(x => pacedKeys.includes(x.key))) {
            ctx.log(`tail: ${s.label}, paced (${paceMs.toFixed(0)} ms between a response and the next request), round ${round}`)
            paced.set(s.key, { row: 'tail', workload: pacedWorkload, server: s.label, round,
              result: await withLag(s, `${s.key} paced`, () => ctx.wrk.run(load(s, o.seconds, paceMs), s.pid)) })
          }
          for (const k of pacedKeys.slice(1)) paced.get(k)!.reference = paced.get('proxy_cache')!
          out.push(...pacedKeys.map(k => paced.get(k)!))
        }
      }
      const missed = (await misses()) - missesBefore
      if (missed !== 0) throw new Error(`the edges filled ${missed} chunks during the measurements; the figures would not be hits`)

      for (const s of servers) {
        const ms = out.filter(m => m.server === s.label && m.workload === workload)
        const lat = (k: 'p50' | 'p99' | 'max') => spread(ms.map(m => m.result.latencyMs[k]))
        const p99 = lat('p99')
        ctx.figure({ row: 'tail', name: `${s.label}: p99`, value: p99.median, unit: 'ms',
          note: `p50 ${fmt(lat('p50'))}, p99 ${fmt(p99)}, max ${fmt(lat('max'))} ms; ${fmt(spread(ms.map(m => m.result.MBps)))} MB/s; ` +
            `server ${fmt(spread(ms.map(m => m.result.cpu.server)), 2)} cores, wrk ${fmt(spread(ms.map(m => m.result.cpu.client)), 2)} cores` })
      }
      for (const s of servers.filter(x => x.edge !== undefined)) {
        const ms = out.filter(m => m.server === s.label && m.workload === workload)
        const { p99, p50, mbps } = overReference(ms)
        const l = lagOf(s.key)
        ctx.figure({ row: 'tail', name: `${s.label}: event-loop delay p99 (main thread)`, value: l.p99.median, unit: 'ms',
          note: `${l.note} (perf_hooks.monitorEventLoopDelay, 10 ms resolution, over each measurement)` })
        ctx.figure({ row: 'tail', name: `${s.label}: p99 over nginx proxy_cache's`, value: p99.median, unit: '×',
          note: `${fmt(p99, 2)}; p50 ${fmt(p50, 2)}×; MB/s ${fmt(mbps, 2)}×; goal p99 ≤ 1.0×${s.key === 'edge' ? `: ${p99.median <= 1 ? 'met' : 'not met'} in this run` : ' (set for the default configuration)'}` })
      }
      for (const s of paceMs > 0 ? servers.filter(x => x.edge !== undefined && pacedKeys.includes(x.key)) : []) {
        const edge = out.filter(m => m.workload === pacedWorkload && m.server === s.label)
        const { p99, p50, mbps } = overReference(edge)
        const each = (m: Measurement) => `${m.result.latencyMs.p99.toFixed(0)} ms at ${m.result.MBps.toFixed(0)} MB/s`
        ctx.figure({ row: 'tail', name: `${s.label}, paced: p99 over nginx proxy_cache's`, value: p99.median, unit: '×',
          note: `${fmt(p99, 2)}; p50 ${fmt(p50, 2)}×; MB/s ${fmt(mbps, 2)}×; wrk ${fmt(spread(edge.map(m => m.result.cpu.client)), 2)} cores ` +
            `(against proxy_cache ${fmt(spread(edge.map(m => m.reference!.result.cpu.client)), 2)}); ` +
            `${o.tailPaceMBps} MB/s offered; per round, edge / proxy_cache: ${edge.map(m => `${each(m)} / ${each(m.reference!)}`).join('; ')}; ` +
            `the edge's event-loop delay ${lagOf(`${s.key} paced`).note}` })
      }
      return out
    } finally {
      await bare?.stop()
      for (const e of edges) await e.stop()
      await nginx?.stop()
      await c?.stop()
    }
  },
}

/** p99, p50 and MB/s of each measurement over its reference's (proxy_cache's in the same round), median and spread */
function overReference(ms: Measurement[]): Record<'p99' | 'p50' | 'mbps', { median: number; min: number; max: number }> {
  const ratio = (f: (m: Measurement) => number) => spread(ms.map(m => f(m) / f(m.reference!)))
  return { p99: ratio(m => m.result.latencyMs.p99), p50: ratio(m => m.result.latencyMs.p50), mbps: ratio(m => m.result.MBps) }
}

function spread(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return { median: s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2, min: s[0]!, max: s[s.length - 1]! }
}

function fmt(s: { median: number; min: number; max: number }, digits = 0): string {
  const f = (v: number) => v.toFixed(digits)
  return s.min === s.max ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`
}
