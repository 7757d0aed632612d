import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { procBytes, startCluster, type LocalCluster } from '../lib/cluster.js'
import { startNginx, type RunningNginx } from '../lib/nginx.js'
import { waitForLine, type Child } from '../lib/proc.js'
import { startService, type RunningService, serviceOptions } from '../lib/reelcdn.js'
import { ratio, type BenchContext, type BenchRow, type Measurement } from '../lib/row.js'
import { checkTitle, ingestTitle, TitleData } from '../lib/title.js'
import { firstByte } from '../lib/ttfb.js'
import { edgeQuiet, metric, until } from '../lib/scrape.js'
import type { WrkLoad } from '../lib/wrk.js'

/**
 * The edge (issue 4) next to nginx `proxy_cache`, both in front of the same
 * router (3 shards, copies=3, child processes), on the same title URL, in one
 * run.
 *
 * nginx is configured the way its documentation caches byte ranges of large
 * files: `slice 1m`, `proxy_cache_key $uri$slice_range`, `Range: $slice_range`
 * upstream, `proxy_cache_valid 200 206`, a cache in the temp dir large enough
 * for everything, `proxy_cache_lock on` (one upstream fetch per slice, as the
 * edge has one per chunk), keepalive to the router. It caches on disk (served
 * with sendfile from the page cache), which is the only way proxy_cache caches.
 *
 * The edge runs once per variant with an empty cache: `ram` (RAM tier holds all
 * the data: hits are RAM hits), `threads` (the same with `--serve-threads`, one
 * per nginx worker beyond the first: nginx's workers and the edge's threads
 * then serve on as many cores) and `disk` (`--ram 0`: every hit reads the disk
 * tier's file through the page cache, as nginx does). Both caches are warmed by
 * reading every chunk of the hot title once, checked against the source's
 * SHA-256, and nginx is checked to answer HIT; a disk variant's title is read a
 * second time, since the disk tier writes its files past the page cache.
 *
 * Next to the RAM variant, a bare `node:http` server holding the same title in
 * Buffers (bench/lib/bare-server.ts, its own process) is measured on the same
 * workloads: the floor for a Node server, so "edge over bare" shows how much the
 * edge's own per-request work costs, apart from what Node itself costs.
 *
 * Misses: a second title is ingested and never read before; nginx's misses are
 * taken first (so no edge readahead has touched those chunks), then the edge's:
 * a 1 MiB range at the start of a cold chunk and one 3/4 deep into another,
 * each on a fresh connection. The upstream data is in the shards' page cache
 * (it was just written), not in their RAM caches.
 */
const COLD_CHUNKS = 6
const BARE = fileURLToPath(new URL('../lib/bare-server.js', import.meta.url))
const BARE_LABEL = 'bare node:http from Buffers (next to: ram tier)'
const MiB = 1024 ** 2

export const edgeRow: BenchRow = {
  name: 'edge',
  title: 'edge hits vs nginx proxy_cache (slice 1m) in front of the same router; miss time to first byte; peak RSS',
  needs: { nginx: 'nginx', wrk: 'wrk' },

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const o = ctx.opts
    const svc = serviceOptions(o)
    let c: LocalCluster | undefined
    let nginx: RunningNginx | undefined
    let edge: RunningService | undefined
    let bare: Child | undefined
    const out: Measurement[] = []
    try {
      c = await startCluster(ctx.procs, join(ctx.dir, 'cluster'), { shards: 3, copies: 3, chunkSize: o.chunkSize, service: svc })
      const hot = new TitleData('bench-hot', o.chunks * o.chunkSize, o.chunkSize)
      const cold = new TitleData('bench-cold', COLD_CHUNKS * o.chunkSize, o.chunkSize)
      ctx.log(`edge: ingesting ${hot.size / MiB} MiB (hot title) and ${cold.size / MiB} MiB (cold title) through the router`)
      await ingestTitle(c.router.url, c.token, hot)
      await ingestTitle(c.router.url, c.token, cold)

      const routerPort = new URL(c.router.url).port
      const cacheBytes = 2 * (hot.size + cold.size)
      nginx = await startNginx(ctx.procs, ctx.tools.nginx!, {
        dir: join(ctx.dir, 'nginx'), workers: o.nginxWorkers,
        httpExtra: `  proxy_cache_path ${join(ctx.dir, 'nginx', 'cache')} levels=1:2 keys_zone=reelcdn:32m max_size=${Math.ceil(cacheBytes / MiB)}m inactive=7d use_temp_path=off;
  upstream reelcdn_router {
    server 127.0.0.1:${routerPort};
    keepalive 32;
  }`,
        serverBody: `    location /v1/content/ {
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

      // nginx misses before any edge exists: its cold chunks 0 (start) and 1 (3/4 deep)
      const miss = async (name: string, base: string, at: number, expect?: string) => {
        const r = await firstByte(`${base}/v1/content/${cold.contentId}`, { range: `bytes=${at}-${at + MiB - 1}` })
        if (r.status !== 206 || !r.body.equals(cold.bytes(at, at + MiB - 1))) throw new Error(`${name}: a cold range answered ${r.status} with wrong bytes`)
        const status = r.headers['x-cache-status']
        if (expect && status !== expect) throw new Error(`${name}: expected X-Cache-Status ${expect}, got ${String(status)}`)
        return r
      }
      const deep = Math.floor(o.chunkSize * 3 / 4 / MiB) * MiB + 4321
      const nStart = await miss('nginx', nginx.url, 0, 'MISS')
      const nDeep = await miss('nginx', nginx.url, o.chunkSize + deep, 'MISS')

      ctx.log('edge: warming nginx proxy_cache and checking what it serves')
      const hotUrl = (base: string) => `${base}/v1/content/${hot.contentId}`
      await checkTitle('nginx proxy_cache', hotUrl(nginx.url), hot, hot.chunks)
      const h = await firstByte(hotUrl(nginx.url), { range: `bytes=${5 * MiB + 7}-${6 * MiB + 6}` })
      if (h.headers['x-cache-status'] !== 'HIT') throw new Error(`nginx did not answer a warmed range from its cache: X-Cache-Status ${String(h.headers['x-cache-status'])}`)

      const ramArgs = ['--ram', String(hot.size + cold.size + 2 * o.chunkSize), '--disk', String(cacheBytes)]
      // nginx runs a worker per core; the edge's counterpart is a serve thread per core next to its main thread
      const serveThreads = Math.max(1, o.nginxWorkers - 1)
      const variants = [
        { key: 'ram', label: 'reelcdn edge, RAM tier hits', args: ramArgs },
        { key: 'threads', label: `reelcdn edge, RAM tier hits, --serve-threads ${serveThreads}`, args: [...ramArgs, '--serve-threads', String(serveThreads)] },
        { key: 'disk', label: 'reelcdn edge, disk tier hits (--ram 0)', args: ['--ram', '0', '--disk', String(cacheBytes)] },
        // not in the default set: disk hits with serve threads (relayed to the main thread until issue 16; read by the threads since)
        { key: 'disk-threads', label: `reelcdn edge, disk tier hits (--ram 0), --serve-threads ${serveThreads}`,
          args: ['--ram', '0', '--disk', String(cacheBytes), '--serve-threads', String(serveThreads)] },
      ].filter(v => o.edgeVariants.includes(v.key))
      let bareUrl: string | undefined
      if (o.edgeVariants.includes('ram') || o.edgeVariants.includes('threads')) {
        const seedFile = join(ctx.dir, 'bare-seed')
        await writeFile(seedFile, hot.seed)
        bare = ctx.procs.spawn('bare node server', process.execPath, [BARE, seedFile, String(hot.size), String(o.chunkSize)])
        bareUrl = await waitForLine(bare, line => line.includes('"bare server ready"') ? (JSON.parse(line) as { url: string }).url : undefined, 60_000)
        await checkTitle('bare node server', hotUrl(bareUrl), hot, hot.chunks)
      }
      let missesTaken = false
      for (const v of variants) {
        edge = await startService(ctx.procs, 'edge', 'edge ready', ['--host', '127.0.0.1', '--port', '0', '--upstream', c.router.url,
          '--data-dir', join(ctx.dir, `edge-${v.key}`), '--log-level', 'info', ...v.args], { ...svc, env: { REELCDN_LOG_REQUESTS: 'false' } })
        if (!missesTaken) {
          missesTaken = true
          const eStart = await miss('edge', edge.url, 2 * o.chunkSize)
          // let the readahead of chunk 3 finish so it does not share the upstream with the next miss
          await until(async () => (await metric(edge!.url, 'reelcdn_edge_fills_in_flight')) === 0, 60_000)
          const eDeep = await miss('edge', edge.url, 5 * o.chunkSize + deep)
          const f = (n: string, r: { ttfbMs: number; totalMs: number }, ref: { ttfbMs: number; totalMs: number }, note: string) =>
            ctx.figure({ row: 'edge', name: n, value: r.ttfbMs, unit: 'ms to first byte',
              note: `${note}; 1 MiB in ${r.totalMs.toFixed(1)} ms; nginx proxy_cache miss (slice 1m): ${ref.ttfbMs.toFixed(1)} ms first byte, ${ref.totalMs.toFixed(1)} ms for 1 MiB` })
          f('miss, 1 MiB at the start of a cold chunk', eStart, nStart, `${v.key} variant, fresh connection`)
          f('miss, 1 MiB 3/4 deep into a cold chunk', eDeep, nDeep, `${v.key} variant, fresh connection`)
          await until(async () => (await metric(edge!.url, 'reelcdn_edge_fills_in_flight')) === 0, 60_000)
        }
        ctx.log(`edge: warming ${v.label} and checking what it serves`)
        await checkTitle(v.label, hotUrl(edge.url), hot, hot.chunks)
        // disk writes are queued after the fill (in both variants: the RAM variant has a disk tier too): measure hits
        // only once every hot chunk is on disk, so the edge's figures are not charged with writing 512 MiB meanwhile
        await until(async () => (await metric(edge!.url, 'reelcdn_edge_tier_bytes', 'tier="disk"')) >= hot.size &&
          await edgeQuiet(edge!.url), 120_000)
        // the disk tier writes its files straight to the device (edge.diskDirectWrites), so they are not in the page cache
        // yet: read once more, so disk hits read them from the page cache, as nginx's hits read its cache files
        if (v.key.startsWith('disk')) await checkTitle(v.label, hotUrl(edge.url), hot, hot.chunks)
        const missesBefore = await metric(edge.url, 'reelcdn_edge_requests_total', 'result="miss"')

        const workloads = [
          { key: 'ranges', name: `${o.rangeBytes / MiB} MiB random ranges`, rangeBytes: o.rangeBytes, connections: o.connections },
          { key: 'whole', name: `whole chunks (aligned ${o.chunkSize / MiB} MiB ranges)`, rangeBytes: 0, connections: o.wholeConnections },
        ].filter(w => o.workloads.includes(w.key))
        const bareRatios: { workload: string; MBps: number; cpuPerByte: number }[] = []
        for (let round = 1; round <= o.rounds; round++) {
          for (const w of workloads) {
            const load = (url: string): WrkLoad => ({
              url, prefix: `/v1/content/${hot.contentId}`, title: true, chunks: hot.chunks, chunkSize: o.chunkSize,
              rangeBytes: w.rangeBytes, connections: w.connections, threads: o.threads, seconds: o.seconds,
              timeoutSeconds: w.rangeBytes === 0 ? 60 : 10,
            })
            const measure = async (server: string, url: string, pid: number) => {
              if (o.warmupSeconds > 0) await ctx.wrk.run({ ...load(url), seconds: o.warmupSeconds }, pid)
              ctx.log(`edge: ${w.name}, ${server}, round ${round}`)
              return { row: 'edge', workload: w.name, server, round, result: await ctx.wrk.run(load(url), pid) }
            }
            const ref = `nginx ${ctx.machine.nginx} proxy_cache (next to: ${v.key} tier)`
            let n: Measurement, e: Measurement
            let b: Measurement | undefined
            const withBare = !v.key.startsWith('disk') && bare !== undefined && bareUrl !== undefined
            if (round % 2 === 1) {
              n = await measure(ref, nginx.url, nginx.pid)
              e = await measure(v.label, edge.url, edge.pid)
              if (withBare) b = await measure(BARE_LABEL, bareUrl!, bare!.pid)
            } else {
              if (withBare) b = await measure(BARE_LABEL, bareUrl!, bare!.pid)
              e = await measure(v.label, edge.url, edge.pid)
              n = await measure(ref, nginx.url, nginx.pid)
            }
            e.reference = n
            out.push(n, e)
            if (b) {
              b.reference = n
              out.push(b)
              bareRatios.push({ workload: w.key, MBps: e.result.MBps / b.result.MBps,
                cpuPerByte: (b.result.cpu.server / b.result.MBps) / (e.result.cpu.server / e.result.MBps) })
            }
          }
        }
        const missesAfter = await metric(edge.url, 'reelcdn_edge_requests_total', 'result="miss"')
        if (missesAfter !== missesBefore) throw new Error(`${v.label}: ${missesAfter - missesBefore} chunk misses during the hit measurements; the figures would not be hits`)
        const hwm = await procBytes(edge.pid, 'VmHWM')
        ctx.figure({ row: 'edge', name: `${v.label}: edge peak RSS (VmHWM)`, value: hwm / MiB, unit: 'MiB',
          note: `RAM tier ${!v.key.startsWith('disk') ? `${(hot.size + cold.size + 2 * o.chunkSize) / MiB} MiB configured, ${(await metric(edge.url, 'reelcdn_edge_tier_bytes', 'tier="ram"')) / MiB} MiB held` : '0'}; up to 8 fills of one ${o.chunkSize / MiB} MiB chunk each in flight during the warm-up` })
        for (const w of workloads) {
          const rs = out.filter(m => m.server === v.label && m.workload.startsWith(w.key === 'ranges' ? `${o.rangeBytes / MiB} MiB` : 'whole')).map(m => ratio(m)!.MBps)
          const goal = v.key.startsWith('disk') ? 0.9 : 1.3
          const med = [...rs].sort((a, b) => a - b)[rs.length >> 1]!
          ctx.figure({ row: 'edge', name: `${v.label}, ${w.name}: MB/s over nginx proxy_cache`, value: med, unit: '×',
            note: w.key === 'ranges' ? `goal ≥ ${goal}×: ${med >= goal ? 'met' : 'not met'} in this run` : 'no goal set' })
          const br = bareRatios.filter(r => r.workload === w.key)
          if (br.length) {
            const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
            ctx.figure({ row: 'edge', name: `${v.label}, ${w.name}: MB/s over a bare node:http server from Buffers`, value: mid(br.map(r => r.MBps)), unit: '×',
              note: `bytes per CPU-second over the bare server: ${mid(br.map(r => r.cpuPerByte)).toFixed(2)}×; 1.00× would mean the edge adds nothing to what Node costs` })
          }
        }
        await edge.stop()
        edge = undefined
      }
      return out
    } finally {
      await bare?.stop()
      await edge?.stop()
      await nginx?.stop()
      await c?.stop()
    }
  },
}
