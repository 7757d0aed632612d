import { join } from 'node:path'
import { checkServer, linkForNginx, putChunks, type ChunkSet } from '../lib/data.js'
import { startNginx, staticLocation, type RunningNginx } from '../lib/nginx.js'
import { startOriginProcess, type RunningService } from '../lib/reelcdn.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'
import type { WrkLoad } from '../lib/wrk.js'

/**
 * The origin shard's read path next to nginx serving the same files (symlinks
 * to the shard's chunk files) with the same URL shape, so one wrk script
 * drives both. The shard runs twice: with its RAM cache of verified segments
 * (the default; after the warm-up every segment is a RAM hit) and with
 * `--memory-cache 0`, where every request reads from the file (page cache, as
 * for nginx) and CRC-verifies each 64 KiB block before sending it.
 *
 * Each shard measurement has its own nginx measurement taken right before or
 * after it, and the ratio is computed between those two.
 */
const PREFIX = '/v1/chunks/bench/'

interface Variant {
  key: string
  label: string
  args: string[]
}

export const originRow: BenchRow = {
  name: 'origin',
  title: 'origin shard read path vs nginx (static files, sendfile) on the same files',
  needs: { nginx: 'nginx', wrk: 'wrk' },

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const o = ctx.opts
    const dataDir = join(ctx.dir, 'origin-data')
    const sizeArgs = ['--chunk-size', String(o.chunkSize)]
    const variants: Variant[] = [
      { key: 'ram', label: 'reelcdn origin, RAM cache (default)', args: [] },
      { key: 'disk', label: 'reelcdn origin, no RAM cache (file + CRC verify)', args: ['--memory-cache', '0'] },
    ].filter(v => o.originVariants.includes(v.key))
    const workloads = [
      { key: 'ranges', name: `${fmtBytes(o.rangeBytes)} random ranges`, rangeBytes: o.rangeBytes, connections: o.connections },
      { key: 'whole', name: 'whole chunks', rangeBytes: 0, connections: o.wholeConnections },
    ].filter(w => o.workloads.includes(w.key))

    let origin: RunningService | undefined
    let nginx: RunningNginx | undefined
    const out: Measurement[] = []
    try {
      ctx.log(`origin: generating ${o.chunks} x ${fmtBytes(o.chunkSize)} random chunks and storing them in a shard`)
      // stored without a shard token, on loopback (the reads measured below need none)
      origin = await startOriginProcess(ctx.procs, dataDir, [...sizeArgs, '--insecure-open-writes'])
      const set: ChunkSet = await putChunks(origin.url, 'bench', o.chunks, o.chunkSize, ctx.log)
      await origin.stop()
      origin = undefined
      const www = await linkForNginx(set, dataDir, join(ctx.dir, 'www'))
      nginx = await startNginx(ctx.procs, ctx.tools.nginx!, {
        dir: join(ctx.dir, 'nginx'), workers: o.nginxWorkers, serverBody: staticLocation(PREFIX, www),
      })
      ctx.log('origin: checking what nginx serves')
      await checkServer('nginx', nginx.url, PREFIX, set, o.rangeBytes)

      for (const v of variants) {
        origin = await startOriginProcess(ctx.procs, dataDir, [...sizeArgs, ...v.args], { nodeArgs: o.nodeArgs, ...(o.cli ? { cli: o.cli } : {}) })
        // byte-exact check, which also reads every chunk once (fills the RAM cache, warms the page cache)
        ctx.log(`origin: checking what ${v.label} serves`)
        await checkServer(v.label, origin.url, PREFIX, set, o.rangeBytes)
        for (let round = 1; round <= o.rounds; round++) {
          for (const w of workloads) {
            const load = (url: string): WrkLoad => ({
              url, prefix: PREFIX, chunks: set.count, chunkSize: set.size, rangeBytes: w.rangeBytes,
              connections: w.connections, threads: o.threads, seconds: o.seconds,
              timeoutSeconds: w.rangeBytes === 0 ? 60 : 10,
            })
            const measure = async (server: string, url: string, pid: number) => {
              if (o.warmupSeconds > 0) await ctx.wrk.run({ ...load(url), seconds: o.warmupSeconds }, pid)
              ctx.log(`origin: ${w.name}, ${server}, round ${round}`)
              return { row: 'origin', workload: w.name, server, round, result: await ctx.wrk.run(load(url), pid) }
            }
            // alternate who goes first, so a drift in background load does not favour one side
            const ref = `nginx ${ctx.machine.nginx} (next to: ${v.label.replace('reelcdn origin, ', '')})`
            let n: Measurement, s: Measurement
            if (round % 2 === 1) {
              n = await measure(ref, nginx.url, nginx.pid)
              s = await measure(v.label, origin.url, origin.pid)
            } else {
              s = await measure(v.label, origin.url, origin.pid)
              n = await measure(ref, nginx.url, nginx.pid)
            }
            s.reference = n
            out.push(n, s)
          }
        }
        await origin.stop()
        origin = undefined
      }
      return out
    } finally {
      await origin?.stop()
      await nginx?.stop()
    }
  },
}

function fmtBytes(n: number): string {
  if (n % 1024 ** 2 === 0) return `${n / 1024 ** 2} MiB`
  if (n % 1024 === 0) return `${n / 1024} KiB`
  return `${n} B`
}
