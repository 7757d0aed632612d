import { Command, InvalidArgumentError, Option } from 'commander'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_LINKS, parseLinks } from '../tools/loadtest/abr-viewers.js'
import { formatSummary } from '../tools/loadtest/main.js'
import { playersMode } from '../tools/loadtest/players-mode.js'
import { makeLadder } from '../test/helpers/abr-ladder.js'
import { staticRangeServer } from '../test/helpers/static-range-server.js'
import { positiveInt } from './lib/args.js'

/**
 * The ABR players alone (issue 15): `loadtest players` viewers on a link mix,
 * against a static range server (no router, no edge: what the player decides
 * and what its viewers see, not what a cache does). A 60 s ladder of five
 * rungs, 0.3 to 5 Mb/s of video plus 64 kb/s of audio, is made with ffmpeg
 * (10 fps, ultrafast, noise so each rung keeps its bitrate; about 20 s on 2
 * cores) and served under a tokened path; each viewer plays it through,
 * behind a link drawn from --links, at --speed.
 *
 *   node dist/bench/abr-client.js [--players 16] [--speed 2] [--links 1.5,4,8,25]
 *
 * Prints the load test's summary (start-up, rebuffer ratio, average bitrate,
 * time share and bytes per rung, switches). The edge's byte hit ratio with
 * ABR viewers is measured through a cluster with `loadtest players`.
 */
const program = new Command('abr-client')
  .description('ABR viewers on a link mix against a static range server')
  .addOption(new Option('--players <n>', 'viewers').argParser(positiveInt('players')).default(16))
  .addOption(new Option('--speed <x>', 'times real time').argParser(positiveInt('speed')).default(2))
  .addOption(new Option('--links <list>', 'link capacities, Mb/s[:weight]').argParser(v => {
    try { return parseLinks(v) } catch (err) { throw new InvalidArgumentError(`${(err as Error).message}.`) }
  }).default(DEFAULT_LINKS, '1.5,4,8,25'))
  .addOption(new Option('--seed <n>', 'random seed').argParser(positiveInt('seed')).default(1))

async function main(): Promise<void> {
  program.parse()
  const a = program.opts<{ players: number; speed: number; links: typeof DEFAULT_LINKS; seed: number }>()
  const dir = await mkdtemp(join(tmpdir(), 'reelcdn-abr-'))
  const closers: (() => void)[] = []
  try {
    const t0 = performance.now()
    await makeLadder(dir, { durationS: 60, audioKbps: 64, rungs: [{ id: 'v144', height: 144, kbps: 300 }, { id: 'v240', height: 240, kbps: 800 },
      { id: 'v360', height: 360, kbps: 1800 }, { id: 'v540', height: 540, kbps: 3500 }, { id: 'v720', height: 720, kbps: 5000 }] })
    process.stderr.write(`ladder made in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
    const srv = await staticRangeServer({ teardown: (f: () => void) => closers.push(f) } as never, { dir, prefix: '/v1/content/movie/t/TOKEN/' })
    const scenario = { name: 'abr-link-mix', players: a.players, arrivalS: 1, zipf: 1, bitrates: [{ bps: 1e6, weight: 1 }], startupS: 2, bufferS: 30,
      sessionS: 60, completeShare: 1, meanWatchedShare: 1, seekChance: 0, premiereShare: 0 }
    const r = await playersMode({ scenario, titles: [{ contentId: 'movie', size: 1, adaptive: true }], durationS: 60 / a.speed + 60, speed: a.speed,
      seed: a.seed, links: a.links, play: async id => ({ contentId: id, urls: [{ url: srv.url('master.m3u8'), kind: 'edge', hls: srv.url('master.m3u8') }] }) })
    r.target = srv.base
    process.stdout.write(formatSummary(r))
    process.stdout.write(`rungs: ${r.players!.abr!.rungs.map(g => `${g.name} ${(g.bandwidth / 1e6).toFixed(2)} Mb/s`).join(', ')}\n`)
  } finally {
    for (const f of closers) f()
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
