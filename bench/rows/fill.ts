import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startCluster, type LocalCluster } from '../lib/cluster.js'
import { minorFaults, waitForLine, type Child } from '../lib/proc.js'
import { CLI, startService, type RunningService, serviceOptions } from '../lib/reelcdn.js'
import type { BenchContext, BenchRow, Measurement } from '../lib/row.js'
import { edgeQuiet, metric, sample, scrape, until } from '../lib/scrape.js'
import { timedRead, type TimedRead } from '../lib/timed-read.js'
import { clockTicks } from '../lib/tools.js'
import { listFitsHead } from '../../lib/integrity/block-list-header.js'
import { ingestTitle, TitleData } from '../lib/title.js'
import { firstByte } from '../lib/ttfb.js'

/**
 * The edge's fill path (issue 16): a cold edge filling a cold title, next to
 * the same bytes read straight from one shard and through the router's relay,
 * in one run. A local cluster (3 shards, copies=3, `--chunks` chunks of
 * `--chunk-size`, child processes); every edge is started fresh, with an
 * empty data dir, so the title is cold to it, while the origin side is warm
 * (its RAM caches and page cache hold the title, as for the references).
 * Each is measured once its RAM tier's chunk memory is faulted in
 * (edge.ramPrefault, on by default: what an edge that has been up a few
 * seconds has; the time it took is logged; from 2026-12-07, stop 35; a build
 * without it is measured at once).
 *
 * Per round, with one client (bench/lib/timed-read.ts, the same for all):
 *   - shard: every chunk from shard-1 (/v1/chunks/{id}.{version}/{i}), one
 *     after another on one connection: the reference;
 *   - router: the whole title with one GET through the router's relay;
 *   - bare relay: the whole title with one GET through a relay that only
 *     reads shard-1's chunks, checks every block's CRC32C against the block
 *     list and writes them on (bench/lib/bare-relay.ts, since stop 38): the
 *     least work any verifying fill does, on this machine, in this round;
 *     each edge's fill rate is also given over it (a figure); and, when
 *     the machine compiles it (cc), the same relay in C (bench/lib/bare-relay.c),
 *     the C relay without the check, and one in C that splices the bytes
 *     through without reading them: what the machine allows a relay with
 *     no runtime, and what the check costs. Not for chunks over 96 MiB,
 *     whose block list does not come in the answer's head;
 *   - edge (per `--fill-paths` variant; none given: the edge's default path):
 *     the whole title with one GET from a cold edge. Its CPU is the edge's;
 *     the origin side's (router + shards) is taken meanwhile, per GB filled,
 *     against the shard's own CPU per GB on the direct read (goal ≤ 2×);
 *   - the same edge again, once its fills and disk writes ended: the title
 *     from its RAM tier, with the same client: the edge's serve path, the
 *     ceiling its fill rate is read against (since stop 37);
 *   - edge over a bare upstream: the same, the edge filling from a bare
 *     node:http server holding the title in memory (bench/lib/bare-upstream.ts),
 *     which the edge reads as it reads a router (the relay's client: undici
 *     and a copy; the direct path reads shards into the chunk's memory,
 *     lib/http/shard-read.ts): the relay path's ceiling, apart from what the
 *     origin costs;
 *   - edge in steady state: the same as the first edge (the edge's default
 *     path), with a RAM tier of two chunks, after it has read the title once
 *     (unmeasured) and purged it: every fill evicts a chunk or writes into
 *     memory one left (edge/tiers/chunk-arena.ts), as on an edge whose RAM
 *     is full; the others start with empty RAM, faulted in ahead (until stop
 *     35 they filled into fresh memory).
 * Each edge line notes the edge's minor page faults per GB filled (first
 * touches of fresh memory: costly on a VM).
 * Goal: the edge's MB/s ≥ 0.7× the shard's.
 *
 * Then, per variant, a fresh edge: a 1 MiB range at the first byte of a cold
 * chunk (the edge's first request), and (once that fill and its readahead
 * ended, and the disk tier wrote them) up to three 3/4 deep into other
 * chunks, then one at the start of each of three other, cold titles
 * (`bench-fill-2` to `-4`, two chunks each; one until 2026-12-06, stop 31):
 * each on a fresh connection, against the router's own first byte
 * for the same range taken just before (goal: within 5 ms); the row ends
 * with each probe's median over every round (`firstBytes`).
 *
 * Then the flash crowd, per variant, a fresh edge: `reelcdn loadtest players
 * --scenario premiere --players 200` on the title, at `CROWD_SPEED`× real
 * time, for `CROWD_SECONDS`. The fill time is the time some fill was in
 * flight, by the edge's own count (`reelcdn_edge_fill_busy_seconds_total`;
 * until 2026-12-06, stop 32, and for a build without it, /metrics read every
 * 100 ms, which on fills of half a second to two seconds in all was off by up
 * to 30 %), against the bytes it took from upstream over the fill rate
 * measured for that variant in the same round (goal ≤ 1.3×).
 */
const MiB = 1024 ** 2
const BARE = fileURLToPath(new URL('../lib/bare-upstream.js', import.meta.url))
const BARE_RELAY = fileURLToPath(new URL('../lib/bare-relay.js', import.meta.url))
/** the same relay in C, compiled by the row (from the repository's source: dist/ holds no C) */
const BARE_RELAY_C = fileURLToPath(new URL('../../../bench/lib/bare-relay.c', import.meta.url))
const NODE_RELAY = 'bare verifying relay from shard-1, one GET: read, CRC32C, write, nothing else (CPU: relay)'
/** the C relay's modes, with their lines */
const C_RELAYS = {
  verify: 'the same relay in C (bench/lib/bare-relay.c) (CPU: relay)',
  copy: 'the relay in C without the check: read, write (CPU: relay)',
  splice: 'a relay in C that splices, reading and checking nothing (CPU: relay)',
}
const CROWD_PLAYERS = 200
/** cold titles (2 chunks each) whose first byte a fresh edge is probed for after its other probes: three samples a round, not one */
const COLD_TITLES = 3
const CROWD_SPEED = 10
const CROWD_SECONDS = 20
/** the edge's seconds with a fill in flight (edge/fill/coalesce.ts busySeconds) */
const BUSY = 'reelcdn_edge_fill_busy_seconds_total'
/** the admin token of the bench's edges: the steady-state one purges the title it read to read it again, cold */
const STEADY_ADMIN = 'bench-fill-admin'

export const fillRow: BenchRow = {
  name: 'fill',
  title: 'edge fill: a cold edge reading a cold title with one GET vs one shard and the router; miss first byte; a premiere flash crowd',
  needs: {},

  async run(ctx: BenchContext): Promise<Measurement[]> {
    const o = ctx.opts
    const svc = serviceOptions(o)
    const ticks = await clockTicks()
    let c: LocalCluster | undefined
    let bare: Child | undefined
    /** the bare relays, in the order each round reads them: the Node one (the figure's) first, then the C ones */
    const relays: { label: string; child: Child; url: Promise<string> }[] = []
    let edge: RunningService | undefined
    const out: Measurement[] = []
    try {
      c = await startCluster(ctx.procs, join(ctx.dir, 'cluster'), { shards: 3, copies: 3, chunkSize: o.chunkSize, service: svc })
      const t = new TitleData('bench-fill', o.chunks * o.chunkSize, o.chunkSize)
      ctx.log(`fill: ingesting ${t.size / MiB} MiB (${t.chunks} chunks) through the router`)
      const { version } = await ingestTitle(c.router.url, c.token, t)
      // more titles, for the first-byte probes of a cold title on an edge that has served the first
      const others = Array.from({ length: COLD_TITLES }, (_, i) => new TitleData(`bench-fill-${i + 2}`, 2 * o.chunkSize, o.chunkSize))
      for (const x of others) await ingestTitle(c.router.url, c.token, x)
      bare = ctx.procs.spawn('bare upstream', process.execPath, [BARE, c.router.url, t.contentId])
      const bareUrl = await waitForLine(bare, l => l.includes('"bare upstream ready"') ? (JSON.parse(l) as { url: string }).url : undefined, 120_000)

      const origin = [c.router.pid, ...c.shards.map(s => s.pid)]
      const whole = (base: string) => [{ url: `${base}/v1/content/${t.contentId}`, offset: 0, length: t.size }]
      const shardChunks = Array.from({ length: t.chunks }, (_, i) =>
        ({ url: `${c!.shards[0]!.url}/v1/chunks/${t.contentId}.${version}/${i}`, offset: i * o.chunkSize, length: o.chunkSize,
          headers: { authorization: `Bearer ${c!.shardToken}` } }))
      // the bare relays read each chunk's block list from its answer's head: a shard sends it there up to 96 MiB chunks
      if (listFitsHead(o.chunkSize)) {
        const shard1 = c.shards[0]!
        const args = [c.shardToken, String(t.size), ...shardChunks.map(x => new URL(x.url).pathname)]
        // its ready line is watched for from its start: waitForLine sees only what comes after it is called
        const start = (label: string, name: string, cmd: string, cmdArgs: string[]) => {
          const child = ctx.procs.spawn(name, cmd, cmdArgs)
          const url = waitForLine(child, l => l.includes('"bare relay ready"') ? (JSON.parse(l) as { url: string }).url : undefined, 30_000)
          url.catch(() => {})
          relays.push({ label, child, url })
        }
        start(NODE_RELAY, 'bare relay', process.execPath, [BARE_RELAY, shard1.url, ...args])
        // the C relays, when this machine compiles them: checking, copying (nothing checked), splicing (nothing read)
        const exe = join(ctx.dir, 'bare-relay')
        const built = await ctx.procs.run('cc', 'cc', ['-O2', '-march=native', '-o', exe, BARE_RELAY_C]).then(() => true,
          (err: Error) => { ctx.log(`fill: the C relays did not build (${err.message.split('\n')[0]}): their lines are left out`); return false })
        for (const [mode, label] of built ? Object.entries(C_RELAYS) : []) start(label, `bare relay (C, ${mode})`, exe, [mode, new URL(shard1.url).port, ...args])
        for (const x of relays) await x.url
      } else {
        ctx.log(`fill: no bare relays this run: a ${o.chunkSize / MiB} MiB chunk's block list does not come in its answer's head`)
      }
      const othersBytes = others.reduce((n, x) => n + x.size, 0)
      const paths = o.fillPaths.length ? o.fillPaths : ['']
      const label = (p: string) => `cold edge, one GET${p ? `, --fill-path ${p}` : ''} (CPU: edge)`
      const startEdge = async (name: string, p: string, upstream = c!.router.url, ram = t.size + 2 * o.chunkSize) => {
        const e = await startService(ctx.procs, 'edge', 'edge ready',
          ['--host', '127.0.0.1', '--port', '0', '--upstream', upstream, '--data-dir', join(ctx.dir, `edge-${name}`), '--log-level', 'info',
            '--ram', String(ram), '--disk', String(2 * (t.size + othersBytes)), ...(p ? ['--fill-path', p] : [])],
          { ...svc, env: { REELCDN_LOG_REQUESTS: 'false', REELCDN_EDGE_ADMIN_TOKEN: STEADY_ADMIN } })
        const ms = await prefaulted(e.url)
        if (ms === 'late') ctx.log(`fill: edge ${name}: its RAM tier (${(ram / MiB).toFixed(0)} MiB) was still being faulted in 2 minutes after it said ready: measured anyway`)
        else if (ms !== undefined) ctx.log(`fill: edge ${name}: its RAM tier (${(ram / MiB).toFixed(0)} MiB) faulted in ${ms.toFixed(0)} ms after it said ready`)
        return e
      }
      /** a cold edge reading the whole title, its minor faults per GB noted */
      const edgeRead = async (e: RunningService, also: number[]) => {
        const f0 = await minorFaults(e.pid)
        const res = await timedRead(whole(e.url), [e.pid], also, ticks)
        return { res, faults: `edge ${((await minorFaults(e.pid) - f0) / (t.size / 1e9) / 1000).toFixed(0)}k minor faults per GB` }
      }
      ctx.log('fill: warming the origin side (one read of every chunk from each shard and through the router)')
      for (const s of c.shards) await timedRead(shardChunks.map(x => ({ ...x, url: x.url.replace(c!.shards[0]!.url, s.url) })), [], [], ticks)
      await timedRead(whole(c.router.url), [], [], ticks)
      for (const x of others) await timedRead([{ url: `${c.router.url}/v1/content/${x.contentId}`, offset: 0, length: x.size }], [], [], ticks)

      const rates = new Map<string, number[]>()
      /** first-byte samples (edge over router, ms) by fill path and probe, over every round */
      const ttfb = new Map<string, Map<Probe, number[]>>()
      const cpuPerGB: { shard: number[]; origin: Map<string, number[]> } = { shard: [], origin: new Map() }
      /** the bare verifying relay's MB/s, by round */
      const relayRates: number[] = []
      for (let round = 1; round <= o.rounds; round++) {
        const m = (workload: string, server: string, result: TimedRead, reference?: Measurement): Measurement =>
          ({ row: 'fill', workload, server, round, result, ...(reference ? { reference } : {}) })
        ctx.log(`fill: round ${round}: shard-1 direct`)
        const s = m('whole title', 'shard-1 direct, chunk by chunk (reference)', await timedRead(shardChunks, [c.shards[0]!.pid], [], ticks))
        cpuPerGB.shard.push(s.result.cpu.server / (s.result.MBps / 1000))
        ctx.log(`fill: round ${round}: router relay`)
        const r = m('whole title', 'router relay, one GET (CPU: router + 3 shards)', await timedRead(whole(c.router.url), origin, [], ticks), s)
        out.push(s, r)
        for (const x of relays) {
          ctx.log(`fill: round ${round}: ${x.label}`)
          const b = m('whole title', x.label, await timedRead(whole(await x.url), [x.child.pid], [c.shards[0]!.pid], ticks), s)
          if (x.label === NODE_RELAY) relayRates.push(b.result.MBps)
          out.push(b)
        }
        for (const p of paths) {
          edge = await startEdge(`r${round}-${p || 'default'}`, p)
          ctx.log(`fill: round ${round}: ${label(p)}`)
          const { res, faults } = await edgeRead(edge, origin)
          const e = m('whole title', label(p), res, s)
          out.push(e)
          rates.set(p, [...(rates.get(p) ?? []), res.MBps])
          const per = res.extra / (res.MBps / 1000)
          cpuPerGB.origin.set(p, [...(cpuPerGB.origin.get(p) ?? []), per])
          e.note = `origin side ${per.toFixed(2)} CPU-s per GB filled; ${faults}`
          // the same edge reading the title again, from its RAM tier, once its fills and disk writes are done: its serve
          // path with this client, the ceiling a fill's rate is read against
          const quiet = edge.url
          await until(() => edgeQuiet(quiet), 120_000)
          ctx.log(`fill: round ${round}: the same edge again, its RAM hits`)
          out.push(m('whole title', `the same edge again, RAM hits: its serve path's ceiling${p ? ` (--fill-path ${p})` : ''} (CPU: edge)`,
            await timedRead(whole(edge.url), [edge.pid], [], ticks), s))
          await edge.stop()
          edge = undefined
        }
        edge = await startEdge(`r${round}-bare`, '', bareUrl)
        ctx.log(`fill: round ${round}: cold edge over a bare upstream`)
        const bareRead = await edgeRead(edge, [])
        out.push({ ...m('whole title', 'cold edge, one GET, bare node:http upstream (CPU: edge)', bareRead.res, s), note: bareRead.faults })
        await edge.stop()
        edge = undefined
        edge = await startEdge(`r${round}-steady`, paths[0]!, c.router.url, 2 * o.chunkSize)
        ctx.log(`fill: round ${round}: cold edge in steady state (RAM of two chunks)`)
        await timedRead(whole(edge.url), [], [], ticks)
        const purged = await fetch(`${edge.url}/v1/cache/${t.contentId}`, { method: 'DELETE', headers: { authorization: `Bearer ${STEADY_ADMIN}` } })
        if (purged.status !== 200) throw new Error(`fill: purging the steady-state edge answered ${purged.status}: ${await purged.text()}`)
        const steady = await edgeRead(edge, origin)
        out.push({ ...m('whole title', `cold edge, one GET, RAM of 2 chunks: fills reuse evicted chunks' memory${paths[0] ? `, --fill-path ${paths[0]}` : ''} (CPU: edge)`,
          steady.res, s), note: steady.faults })
        await edge.stop()
        edge = undefined

        for (const p of paths) {
          if (!ttfb.has(p)) ttfb.set(p, new Map())
          // RAM for every chunk the probes fill (and their readahead): no probe lands on a full RAM tier
          await firstBytes(ctx, t, others, c.router.url, () => startEdge(`r${round}-ttfb-${p || 'default'}`, p, c!.router.url, t.size + othersBytes + 2 * o.chunkSize),
            e => { edge = e }, p, ttfb.get(p)!)
        }
        for (const p of paths) {
          edge = await startEdge(`r${round}-crowd-${p || 'default'}`, p)
          await crowd(ctx, o.cli ?? CLI, t.contentId, edge.url, rates.get(p)!.at(-1)!, p, join(ctx.dir, `crowd-r${round}-${p || 'default'}`))
          await edge.stop()
          edge = undefined
        }
      }
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
      for (const [p, byProbe] of ttfb) for (const [probe, xs] of byProbe) {
        ctx.figure({ row: 'fill', name: `miss, ${PROBES[probe]}: edge first byte over the router's, median of ${xs.length}${p ? ` (--fill-path ${p})` : ''}`,
          value: med(xs), unit: 'ms more', note: `spread ${Math.min(...xs).toFixed(1)} to ${Math.max(...xs).toFixed(1)} ms; goal ≤ 5 ms` })
      }
      for (const p of relayRates.length ? paths : []) {
        const ratios = rates.get(p)!.map((x, i) => x / relayRates[i]!)
        ctx.figure({ row: 'fill', name: `cold edge's fill over the bare verifying relay's MB/s, same round${p ? ` (--fill-path ${p})` : ''}`, value: med(ratios), unit: '×',
          note: `spread ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×; the Node relay at ${med(relayRates).toFixed(0)} MB/s (median)` })
      }
      for (const p of paths) {
        const ratios = cpuPerGB.origin.get(p)!.map((x, i) => x / cpuPerGB.shard[i]!)
        ctx.figure({ row: 'fill', name: `origin CPU per GB filled over a shard's own per GB read${p ? ` (--fill-path ${p})` : ''}`, value: med(ratios), unit: '×',
          note: `${med(cpuPerGB.origin.get(p)!).toFixed(2)} CPU-s/GB (router + 3 shards) vs ${med(cpuPerGB.shard).toFixed(2)}; spread ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×; goal ≤ 2×` })
      }
      return out
    } finally {
      await edge?.stop()
      await bare?.stop()
      for (const x of relays) await x.child.stop()
      await c?.stop()
    }
  },
}

const PENDING = 'reelcdn_edge_chunk_slots_prefault_pending_bytes'

/**
 * Waits, once a fresh edge said ready, until it has faulted its RAM tier's
 * chunk memory in (edge.ramPrefault, edge/tiers/chunk-arena.ts "Prefaulted
 * slots": the gauge of what is left reads 0, also when the edge does not
 * fault in, without the splice addon or with serve threads), as on an edge
 * that has been up a few seconds before its first fill. The ms that took;
 * undefined for a build without the gauge (measured at once); 'late' after
 * two minutes (then measured anyway).
 */
async function prefaulted(url: string): Promise<number | 'late' | undefined> {
  const t0 = performance.now()
  if (!new RegExp(`^${PENDING}[ {]`, 'm').test(await scrape(url))) return undefined
  try {
    await until(async () => (await metric(url, PENDING)) === 0, 120_000)
  } catch {
    return 'late'
  }
  return performance.now() - t0
}

/** what each first-byte probe measures, in the order a fresh edge takes them */
const PROBES = {
  fresh: 'first byte of a cold chunk, a fresh edge\'s first request',
  deep: '3/4 deep into a cold chunk',
  start: 'first byte of a cold chunk of a title the edge has read',
  title: 'first byte of a cold title\'s chunk, on an edge that has served',
} as const
type Probe = keyof typeof PROBES

/**
 * A cold miss's first byte, on a fresh edge, each probe against the router's
 * own first byte for the same range taken just before the edge started: a
 * chunk's start (the edge's first request: its code and connections are
 * cold too), then 3/4 deep into up to three other chunks (the last, then
 * every other one back: chunk 0's readahead takes chunk 1, and each deep
 * probe's readahead the chunk after it, never one probed later), then the
 * start of each of the other, cold titles: what a player's cold miss meets
 * on an edge that is running. Each probe waits for a quiet edge. The samples go
 * to `samples` by probe, for the row's medians.
 */
async function firstBytes(ctx: BenchContext, t: TitleData, others: TitleData[], router: string, start: () => Promise<RunningService>,
  hold: (e: RunningService | undefined) => void, p: string, samples: Map<Probe, number[]>): Promise<void> {
  const cs = t.chunkSize
  const deep = Math.floor(cs * 3 / 4 / MiB) * MiB + 4321
  // 3/4 deep into the last chunk, then the start of the one before it, and so on down: each chunk cold when probed (the
  // edge reads one chunk ahead, edge.readaheadChunks 1, and the chunk after each is in by then; chunk 1 is the first
  // probe's readahead)
  const down = Array.from({ length: 6 }, (_, k) => t.chunks - 1 - k).filter(i => i >= 2)
  const at: { probe: Probe; title: TitleData; pos: number }[] = [{ probe: 'fresh', title: t, pos: 0 },
    ...down.map((i, k) => k % 2 === 0 ? { probe: 'deep' as const, title: t, pos: i * cs + deep } : { probe: 'start' as const, title: t, pos: i * cs }),
    ...others.map(x => ({ probe: 'title' as const, title: x, pos: 0 }))]
  const get = async (base: string, a: (typeof at)[number]) => {
    const r = await firstByte(`${base}/v1/content/${a.title.contentId}`, { range: `bytes=${a.pos}-${a.pos + MiB - 1}` })
    if (r.status !== 206 || !r.body.equals(a.title.bytes(a.pos, a.pos + MiB - 1))) throw new Error(`fill: ${base} answered a range with ${r.status} and wrong bytes`)
    return r
  }
  const ups = []
  for (const a of at) ups.push(await get(router, a))
  const edge = await start()
  hold(edge)
  try {
    for (const [i, a] of at.entries()) {
      const misses = await metric(edge.url, 'reelcdn_edge_requests_total', 'result="miss"')
      const e = await get(edge.url, a)
      if (await metric(edge.url, 'reelcdn_edge_requests_total', 'result="miss"') === misses) throw new Error(`fill: the ${a.probe} probe at ${a.pos} was not a miss`)
      // the next probe starts on a quiet edge: no fill, and no chunk still being written to the disk tier
      // (a probe that landed during those writes measured them: 2-6x its first byte on this 2-core machine)
      await until(() => edgeQuiet(edge.url), 120_000)
      const u = ups[i]!
      samples.set(a.probe, [...(samples.get(a.probe) ?? []), e.ttfbMs - u.ttfbMs])
      ctx.figure({ row: 'fill', name: `miss, ${PROBES[a.probe]}: edge first byte over the router's${p ? ` (--fill-path ${p})` : ''}`, value: e.ttfbMs - u.ttfbMs, unit: 'ms more',
        note: `edge ${e.ttfbMs.toFixed(1)} ms, router ${u.ttfbMs.toFixed(1)} ms, 1 MiB on a fresh connection; goal ≤ 5 ms` })
    }
  } finally {
    hold(undefined)
    await edge.stop()
  }
}

/** The premiere scenario's 200 players on the title through a fresh edge; the time fills were in flight against bytes / rate. */
async function crowd(ctx: BenchContext, cli: string, contentId: string, edgeUrl: string, rateMBps: number, p: string, outDir: string): Promise<void> {
  const args = ['loadtest', 'players', '--scenario', 'premiere', '--players', String(CROWD_PLAYERS), '--target', edgeUrl, '--titles', contentId,
    '--duration', String(CROWD_SECONDS), '--speed', String(CROWD_SPEED), '--seed', '1', '--no-ceiling', '--out', outDir]
  ctx.log(`fill: flash crowd: reelcdn ${args.join(' ')}`)
  const before = await scrape(edgeUrl)
  const bytes0 = sample(before, 'reelcdn_edge_upstream_bytes_total')
  // the edge's own count of the time with a fill in flight; a build without it (--cli of an older one) is sampled
  const counted = new RegExp(`^${BUSY}[ {]`, 'm').test(before)
  const busy0 = sample(before, BUSY)
  let sampledMs = 0
  let done = false
  const run = ctx.procs.run('reelcdn loadtest', process.execPath, [cli, ...args]).finally(() => { done = true })
  let last = performance.now()
  // fills end after the players stop too: poll until the run ended and no fill is left
  for (;;) {
    const inFlight = await metric(edgeUrl, 'reelcdn_edge_fills_in_flight')
    const now = performance.now()
    if (inFlight > 0) sampledMs += now - last
    last = now
    if (done && inFlight === 0) break
    await new Promise(r => setTimeout(r, 100))
  }
  await run
  const after = await scrape(edgeUrl)
  const bytes = sample(after, 'reelcdn_edge_upstream_bytes_total') - bytes0
  const fills = sample(after, 'reelcdn_edge_fills_total')
  const busyMs = counted ? (sample(after, BUSY) - busy0) * 1000 : sampledMs
  const ideal = bytes / 1e6 / rateMBps * 1000
  ctx.figure({ row: 'fill', name: `flash crowd: fill time over bytes / fill rate${p ? ` (--fill-path ${p})` : ''}`, value: busyMs / ideal, unit: '×',
    note: `${CROWD_PLAYERS} players (premiere, ${CROWD_SPEED}× speed, ${CROWD_SECONDS} s): ${fills} fills, ${(bytes / 1e6).toFixed(0)} MB upstream in ` +
      `${(busyMs / 1000).toFixed(2)} s with a fill in flight (${counted ? `${BUSY}; sampled every 100 ms: ${(sampledMs / 1000).toFixed(1)} s` : 'sampled every 100 ms'}); ` +
      `at the ${rateMBps.toFixed(0)} MB/s measured: ${(ideal / 1000).toFixed(2)} s; goal ≤ 1.3×` })
}
