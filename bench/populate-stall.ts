import { Command, InvalidArgumentError, Option } from 'commander'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/**
 * What faulting chunk memory in on libuv's pool costs the event loop (the
 * splice addon's `populate`, native/splice.c): an edge faults its spare chunk
 * in that way at start and after every fill that took it, while the event
 * loop goes on serving. The event loop's own memory work (V8's heap, malloc,
 * Buffers) maps and unmaps memory, and a fault taken with the process's mmap
 * lock held makes every such call wait.
 *
 *   node dist/bench/populate-stall.js [--rounds 3] [--mib 256] [--addon other/dist/native/splice.node]
 *
 * Per round, in this process: the event loop allocates a 4 MiB Buffer and
 * writes its first 256 KiB, once a turn, for as long as the addon takes to
 * fault `--mib` MiB of fresh chunk memory in (64 MiB Buffers from `alloc`,
 * 8 MiB a call, as lib/net/zero-copy.ts asks), then the same for as long
 * again with nothing faulted in (the reference). Prints, for each, the
 * turns done and the p50, p99 and max of a turn, and the CPU this process
 * used. Each round waits 5 s first: on a VM that reports free memory to its
 * host, memory freed by the round before is fresh to the host again by then,
 * as an edge's spare is after a quiet spell. `--addon` loads another build's
 * splice.node, to compare.
 */
const MiB = 1024 ** 2

interface Addon {
  alloc(size: number): Buffer
  populate(b: Buffer, offset: number, length: number): Promise<number>
}

const program = new Command('populate-stall')
  .description("the event loop's allocation latency while the splice addon faults chunk memory in on libuv's pool, against none")
  .addOption(new Option('--rounds <n>', 'rounds').argParser(positive('rounds')).default(3))
  .addOption(new Option('--mib <n>', 'MiB of fresh chunk memory faulted in per round').argParser(positive('mib')).default(256))
  .addOption(new Option('--addon <path>', "the splice addon to measure (default: this build's dist/native/splice.node)"))

function positive(what: string) {
  return (v: string): number => {
    if (!/^[1-9][0-9]*$/.test(v)) throw new InvalidArgumentError(`expected ${what} to be a positive integer, got ${v}.`)
    return Number(v)
  }
}

interface Turns { turns: number; p50: number; p99: number; max: number; cpuMs: number; ms: number }

/** one allocation a turn until `done()`, each turn's duration in ms */
async function turns(done: () => boolean): Promise<Turns> {
  const lat: number[] = []
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  while (!done()) {
    const t = performance.now()
    Buffer.allocUnsafeSlow(4 * MiB).fill(1, 0, 256 * 1024)
    lat.push(performance.now() - t)
    await new Promise(r => setImmediate(r))
  }
  const cpu = process.cpuUsage(cpu0)
  lat.sort((a, b) => a - b)
  const at = (q: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * q))] ?? 0
  return { turns: lat.length, p50: at(0.5), p99: at(0.99), max: lat.at(-1) ?? 0, cpuMs: (cpu.user + cpu.system) / 1000, ms: performance.now() - t0 }
}

const line = (what: string, r: Turns) =>
  `${what}: ${r.turns} turns in ${r.ms.toFixed(0)} ms, a turn p50 ${r.p50.toFixed(2)} / p99 ${r.p99.toFixed(2)} / max ${r.max.toFixed(2)} ms, CPU ${(r.cpuMs / r.ms).toFixed(2)} cores`

async function main(): Promise<void> {
  program.parse()
  const o = program.opts<{ rounds: number; mib: number; addon?: string }>()
  const path = o.addon ?? fileURLToPath(new URL('../native/splice.node', import.meta.url))
  const addon = createRequire(import.meta.url)(path) as Addon
  console.log(`populate-stall: ${o.mib} MiB per round, addon ${path}`)
  const ratios: number[] = []
  for (let round = 1; round <= o.rounds; round++) {
    await new Promise(r => setTimeout(r, 5000))
    let faulting = true
    const t0 = performance.now()
    const job = (async () => {
      for (let left = o.mib * MiB; left > 0; left -= 64 * MiB) {
        const b = addon.alloc(Math.min(64 * MiB, left))
        for (let off = 0; off < b.length; off += 8 * MiB) {
          const r = await addon.populate(b, off, Math.min(8 * MiB, b.length - off))
          if (r !== 0) throw new Error(`populate answered ${r}`)
        }
      }
    })().finally(() => { faulting = false })
    const during = await turns(() => !faulting)
    await job
    const took = performance.now() - t0
    const until = performance.now() + took
    const quiet = await turns(() => performance.now() >= until)
    console.log(`round ${round}: faulting ${o.mib} MiB in took ${took.toFixed(0)} ms`)
    console.log(`  ${line('while faulting in', during)}`)
    console.log(`  ${line('reference, nothing faulted in', quiet)}`)
    ratios.push(during.p99 / Math.max(quiet.p99, 0.001))
  }
  ratios.sort((a, b) => a - b)
  console.log(`a turn's p99 while faulting in over the reference's: median ${ratios[ratios.length >> 1]!.toFixed(1)}× (${ratios[0]!.toFixed(1)}–${ratios.at(-1)!.toFixed(1)}×)`)
}

main().catch(err => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
