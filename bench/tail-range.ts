import { Command, Option } from 'commander'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startCluster } from './lib/cluster.js'
import { positiveInt } from './lib/args.js'
import { ProcessGroup } from './lib/proc.js'
import { startService, type ServiceOptions } from './lib/reelcdn.js'
import { ingestTitle, TitleData } from './lib/title.js'

/**
 * Short ranges at a chunk's end on a cold edge (issue 14, item 5): the time to
 * the last byte of the last 100 bytes of chunk 0 and of the last 32 KiB of the
 * title, each asked of a fresh edge (empty tiers) in front of a router and 3
 * shards (copies=3), every service its own child process, and the same ranges
 * asked of the router for reference. Twice per range: as the edge's first
 * request ("cold edge": its metadata fetch and a new process's first request
 * included), and after a HEAD that cached the title's metadata ("cold chunk":
 * the chunk miss alone). Players ask for exactly these ranges (an
 * MP4's moov at the end, WebM cues); before block-verified fills an edge held
 * the range's last byte until the whole chunk had been fetched and hashed.
 *
 *   node dist/bench/tail-range.js [--rounds 3] [--cli other/dist/cli.js]
 *
 * The title is 104 MiB (chunks of 64 MiB and 40 MiB). Prints one line per
 * measurement and the median of each; stops every child it started by PID.
 */
const MiB = 1024 ** 2

const program = new Command('tail-range')
  .description('time to the last byte of short ranges at a chunk\'s end, on a cold edge and on the router')
  .addOption(new Option('--rounds <n>', 'fresh edges per range').argParser(positiveInt('rounds')).default(3))
  .addOption(new Option('--cli <path>', "the reelcdn CLI to measure, to compare another build (default: this build's dist/cli.js)"))

async function main(): Promise<void> {
  program.parse()
  const a = program.opts<{ rounds: number; cli?: string }>()
  const svc: ServiceOptions = a.cli ? { cli: a.cli } : {}
  const chunkSize = 64 * MiB
  const procs = new ProcessGroup()
  const dir = await mkdtemp(join(tmpdir(), 'reelcdn-tail-'))
  const log = (s: string) => process.stderr.write(`${s}\n`)
  process.once('exit', () => procs.killAllNow())
  try {
    const c = await startCluster(procs, dir, { shards: 3, copies: 3, chunkSize, service: svc })
    const t = new TitleData('tail', 104 * MiB, chunkSize)
    await ingestTitle(c.router.url, c.token, t)
    const ranges: [string, number, number][] = [
      ['last 100 bytes of chunk 0', chunkSize - 100, chunkSize - 1],
      ['last 32 KiB of the title', t.size - 32 * 1024, t.size - 1],
    ]
    const results: Record<string, number[]> = {}
    const measure = async (name: string, url: string, start: number, end: number) => {
      const t0 = performance.now()
      const res = await request(url, { headers: { range: `bytes=${start}-${end}` } })
      const body = Buffer.from(await res.body.arrayBuffer())
      const ms = performance.now() - t0
      if (res.statusCode !== 206 || !body.equals(t.bytes(start, end))) throw new Error(`${name}: ${res.statusCode}, ${body.length} bytes that do not match the source`)
      ;(results[name] ??= []).push(ms)
      log(`${name}: ${ms.toFixed(1)} ms`)
    }
    for (let round = 0; round < a.rounds; round++) {
      for (const [what, start, end] of ranges) {
        for (const head of [false, true]) {
          const edgeDir = join(dir, `edge-${round}-${start}-${head}`)
          await mkdir(edgeDir, { recursive: true })
          const edge = await startService(procs, 'edge', 'edge ready',
            ['--port', '0', '--upstream', c.router.url, '--data-dir', edgeDir, '--fill-window', 'never', '--log-level', 'info'], svc)
          try {
            if (head) await (await request(`${edge.url}/v1/content/tail`, { method: 'HEAD' })).body.dump()
            await measure(`${head ? 'cold chunk' : 'cold edge'}, ${what}`, `${edge.url}/v1/content/tail`, start, end)
          } finally {
            await edge.stop()
          }
        }
        await measure(`router, ${what}`, `${c.router.url}/v1/content/tail`, start, end)
      }
    }
    process.stdout.write('median time to the last byte:\n')
    for (const [name, ms] of Object.entries(results)) {
      const s = [...ms].sort((x, y) => x - y)
      process.stdout.write(`  ${name}: ${s[Math.floor(s.length / 2)]!.toFixed(1)} ms (of ${s.map(x => x.toFixed(0)).join(', ')})\n`)
    }
    await c.stop()
  } finally {
    await procs.stopAll()
    await rm(dir, { recursive: true, force: true })
  }
}

main().catch(err => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
