import { join } from 'node:path'
import { serviceOptions } from '../lib/reelcdn.js'
import { checkServer } from '../lib/data.js'
import { procBytes, startCluster, type LocalCluster } from '../lib/cluster.js'
import { childPids, cpuSeconds } from '../lib/proc.js'
import { startNginx, type RunningNginx } from '../lib/nginx.js'
import { clockTicks } from '../lib/tools.js'
import { ingestTitle, TitleData } from '../lib/title.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'
import type { WrkLoad } from '../lib/wrk.js'

/**
 * The router (issue 3): ingest and reads, with copies=3 over 3 shards, every
 * service its own child process.
 *
 * Ingest: one PUT /v1/content/{id} of `--ingest-bytes` (2 GiB by default)
 * with its Content-Digest, timed from the first byte sent to the 201, which
 * the router answers only once every chunk is on all 3 owners (fsynced and
 * verified by each shard) and the manifest is stored. So MB/s is title bytes
 * per second; the shards together write 3× that. The router's peak RSS is
 * /proc/<pid>/status VmHWM afterwards (the issue's bound: under 512 MiB).
 *
 * Reads: the first `--chunks` chunks (fits the shards' RAM caches), read
 * through the router at /v1/content/{id}/chunks/{i} and from one shard
 * directly at /v1/chunks/{id}.{version}/{i} (with copies=3 on 3 shards every
 * shard holds every chunk), measured back to back, after every shard's RAM
 * cache was warmed. The router checks every block against the manifest's
 * block lists (whole chunks are not hashed again unless
 * router.verifyWholeChunks). Server CPU for the router side counts the router
 * and all 3 shards; the figures after the table give them apart, with the
 * relay's ratio, medians over rounds.
 *
 * A production relay on the same machine, as the router's yardstick: nginx
 * as a plain reverse proxy in front of the same 3 shards (`proxy_pass`
 * round robin on kept connections, the shards' token added, no cache, no
 * check of any byte), read with the same wrk load and measured in the same
 * round. A relayed byte crosses loopback TCP twice where a direct read's
 * crosses once, on the cores wrk uses too; nginx shows what a relay with
 * next to no work of its own per request reaches here, so the router's
 * ratio can be read against it. nginx relays unbuffered through a 1 MiB
 * buffer (`proxy_buffering off`), as a streaming relay is set up; with its
 * default buffering every 1 MiB answer spills to a temp file and it relayed
 * at a third to a half of that rate (docs/benchmarks.md, "The relay next to
 * nginx's").
 * Only GET and HEAD pass: nginx adds the shards' token to what it relays.
 */
const REF = 'shard-1 direct (/v1/chunks)'
const RELAY = 'router (CPU: router + 3 shards)'
const NGINX = 'nginx proxy_pass (CPU: nginx + 3 shards)'

interface CpuSplit { workload: string; server: string; main: number; behind: number }

/**
 * The relay's figures over all rounds of a workload, in one place: its MB/s
 * over the direct read's (the issue's goal: at least 0.5×) and nginx's, and
 * the CPU per GB of the router, of nginx and of the shards behind each apart,
 * next to the direct shard's; medians with the min–max spread over rounds
 * (the router over nginx: the median of the rounds' ratios).
 */
function relayFigures(ctx: BenchContext, workload: string, ratios: number[], nginxRatios: number[], split: CpuSplit[]): void {
  if (!ratios.length) return
  const spread = (xs: number[]) => xs.length > 1 ? `, spread ${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)} over ${xs.length} rounds` : ''
  const r = median(ratios)
  ctx.figure({ row: 'router', name: `${workload}: relay over a direct shard read`, value: r, unit: 'x',
    note: `median${spread(ratios)}; goal at least 0.5x: ${r >= 0.5 ? 'met' : 'NOT met'}` })
  if (nginxRatios.length) {
    const n = median(nginxRatios)
    // each round's router over that round's nginx: the two are measured back to back
    const over = median(ratios.map((x, i) => x / nginxRatios[i]!))
    ctx.figure({ row: 'router', name: `${workload}: nginx proxy_pass over a direct shard read`, value: n, unit: 'x',
      note: `median${spread(nginxRatios)}; the router's relay over nginx's: ${over.toFixed(2)}x (median over rounds)` })
  }
  const relay = split.filter(x => x.server === RELAY)
  const direct = split.filter(x => x.server === REF).map(x => x.main)
  const nginx = split.filter(x => x.server === NGINX)
  for (const [name, xs] of [['router', relay.map(x => x.main)], ['3 shards behind it', relay.map(x => x.behind)], ['shard-1 read directly', direct],
    ['nginx proxy_pass', nginx.map(x => x.main)], ['3 shards behind nginx', nginx.map(x => x.behind)]] as const) {
    if (xs.length) ctx.figure({ row: 'router', name: `${workload}: CPU per GB, ${name}`, value: median(xs), unit: 's/GB', note: `median${spread(xs)}` })
  }
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0)
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export const routerRow: BenchRow = {
  name: 'router',
  title: 'router: ingest with copies=3, reads through the router and through nginx proxy_pass vs a direct shard read',
  needs: { nginx: 'nginx', wrk: 'wrk' },

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const o = ctx.opts
    const svc = serviceOptions(o)
    let c: LocalCluster | undefined
    let nginx: RunningNginx | undefined
    const out: Measurement[] = []
    try {
      c = await startCluster(ctx.procs, ctx.dir, { shards: 3, copies: 3, chunkSize: o.chunkSize, service: svc })
      const size = Math.max(o.ingestBytes, o.chunks * o.chunkSize)
      ctx.log(`router: hashing a ${size / 1024 ** 2} MiB title to send with its Content-Digest`)
      const t = new TitleData('bench-ingest', size, o.chunkSize)
      const ticks = await clockTicks()
      const allPids = [c.router.pid, ...c.shards.map(s => s.pid)]
      const cpu0 = await Promise.all(allPids.map(p => cpuSeconds(p, ticks)))
      ctx.log(`router: ingesting ${size / 1024 ** 2} MiB (${t.chunks} chunks) with copies=3`)
      const t0 = process.hrtime.bigint()
      const { version } = await ingestTitle(c.router.url, c.token, t)
      const secs = Number(process.hrtime.bigint() - t0) / 1e9
      const cpu1 = await Promise.all(allPids.map(p => cpuSeconds(p, ticks)))
      const hwm = await procBytes(c.router.pid, 'VmHWM')
      const routerCores = (cpu1[0]! - cpu0[0]!) / secs
      const shardCores = cpu1.slice(1).reduce((a, b, i) => a + b - cpu0[i + 1]!, 0) / secs
      ctx.figure({ row: 'router', name: 'ingest, copies=3', value: size / secs / 1e6, unit: 'MB/s',
        note: `${size / 1024 ** 2} MiB in ${secs.toFixed(1)} s; CPU: router ${routerCores.toFixed(2)} cores, 3 shards ${shardCores.toFixed(2)} cores` })
      ctx.figure({ row: 'router', name: 'router peak RSS (VmHWM) during the ingest', value: hwm / 1024 ** 2, unit: 'MiB',
        note: `bound 512 MiB: ${hwm < 512 * 1024 ** 2 ? 'met' : 'NOT met'}` })

      const set = t.chunkSet(Math.min(o.chunks, t.chunks))
      const viaRouter = `/v1/content/${t.contentId}/chunks/`
      const direct = `/v1/chunks/${t.contentId}.${version}/`
      const shard = c.shards[0]!
      const shardPids = c.shards.map(x => x.pid)
      // shards check their token on reads too (issue 14): the direct reference sends it, as the router does
      const shardAuth = { authorization: `Bearer ${c.shardToken}` }
      ctx.log('router: checking what the router and every shard serve (also warms every shard\'s RAM cache)')
      await checkServer('router', c.router.url, viaRouter, set, o.rangeBytes)
      // the router spreads reads over all 3 owners: a cold owner would charge its disk reads to the router side
      for (const [i, x] of c.shards.entries()) await checkServer(`shard-${i + 1}`, x.url, direct, set, o.rangeBytes, shardAuth)
      nginx = await startNginx(ctx.procs, ctx.tools.nginx!, {
        dir: join(ctx.dir, 'nginx'), workers: o.nginxWorkers,
        httpExtra: `  upstream reelcdn_shards {
${c.shards.map(x => `    server 127.0.0.1:${new URL(x.url).port};`).join('\n')}
    keepalive 32;
  }`,
        // reads only: every request it passes on carries the shards' token
        serverBody: `    location /v1/chunks/ {
      limit_except GET HEAD { deny all; }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer ${c.shardToken}";
      proxy_pass http://reelcdn_shards;
      proxy_buffering off;
      proxy_buffer_size 1m;
      # unused unbuffered; set only so that nginx accepts the 1m buffer size
      proxy_buffers 4 1m;
      proxy_busy_buffers_size 1m;
    }`,
      })
      await checkServer('nginx proxy_pass', nginx.url, direct, set, o.rangeBytes)
      const split: CpuSplit[] = []
      const ratios: { workload: string; MBps: number; nginx: number }[] = []
      const workloads = [
        { key: 'ranges', name: `${o.rangeBytes / 1024 ** 2} MiB random ranges`, rangeBytes: o.rangeBytes, connections: o.connections },
        { key: 'whole', name: 'whole chunks', rangeBytes: 0, connections: o.wholeConnections },
      ].filter(w => o.workloads.includes(w.key))
      for (let round = 1; round <= o.rounds; round++) {
        for (const w of workloads) {
          const load = (url: string, prefix: string): WrkLoad => ({
            url, prefix, ...(url === shard.url ? { headers: shardAuth } : {}), chunks: set.count, chunkSize: set.size, rangeBytes: w.rangeBytes,
            connections: w.connections, threads: o.threads, seconds: o.seconds, timeoutSeconds: w.rangeBytes === 0 ? 60 : 10,
          })
          /** `also`: the processes behind the server; `withChildren`: the server's children are its own (nginx's workers, read at each run) */
          const measure = async (server: string, url: string, prefix: string, pid: number, also: number[], withChildren = false) => {
            const workers = withChildren ? await childPids(pid) : []
            if (o.warmupSeconds > 0) await ctx.wrk.run({ ...load(url, prefix), seconds: o.warmupSeconds }, pid, also)
            ctx.log(`router: ${w.name}, ${server}, round ${round}`)
            const pids = [pid, ...workers, ...also]
            const c0 = await Promise.all(pids.map(p => cpuSeconds(p, ticks)))
            const result = await ctx.wrk.run(load(url, prefix), pid, also) // wrk.run counts pid's children itself
            const c1 = await Promise.all(pids.map(p => cpuSeconds(p, ticks)))
            // CPU per GB wrk received, of the serving process and of the ones behind it, apart
            const gb = result.bytes / 1e9
            const used = c1.map((x, i) => x - c0[i]!)
            split.push({ workload: w.name, server, main: sum(used.slice(0, 1 + workers.length)) / gb, behind: sum(used.slice(1 + workers.length)) / gb })
            return { row: 'router', workload: w.name, server, round, result }
          }
          const refName = REF
          const rName = RELAY
          const viaNginx = () => measure(NGINX, nginx!.url, direct, nginx!.pid, shardPids, true)
          let s: Measurement, r: Measurement, n: Measurement
          if (round % 2 === 1) {
            s = await measure(refName, shard.url, direct, shard.pid, [])
            r = await measure(rName, c.router.url, viaRouter, c.router.pid, shardPids)
            n = await viaNginx()
          } else {
            n = await viaNginx()
            r = await measure(rName, c.router.url, viaRouter, c.router.pid, shardPids)
            s = await measure(refName, shard.url, direct, shard.pid, [])
          }
          r.reference = s
          n.reference = s
          out.push(s, r, n)
          ratios.push({ workload: w.name, MBps: r.result.MBps / s.result.MBps, nginx: n.result.MBps / s.result.MBps })
        }
      }
      for (const w of workloads) {
        const mine = ratios.filter(x => x.workload === w.name)
        relayFigures(ctx, w.name, mine.map(x => x.MBps), mine.map(x => x.nginx), split.filter(x => x.workload === w.name))
      }
      return out
    } finally {
      await nginx?.stop()
      await c?.stop()
    }
  },
}
