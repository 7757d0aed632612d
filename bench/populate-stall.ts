import { Command, Option } from 'commander'
import { createRequire } from 'node:module'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { positiveInt } from './lib/args.js'

/**
 * What faulting chunk memory in on libuv's pool costs the event loop (the
 * splice addon's `populate`, native/splice.c): an edge faults its spare chunk
 * in that way at start and after every fill that took it, while the event
 * loop goes on serving. The event loop's own memory work (V8's heap, malloc,
 * Buffers) maps memory (mmap, brk) and faults it in, and a fault taken with
 * the process's mmap lock held across a whole range makes each of those wait.
 *
 *   node dist/bench/populate-stall.js [--rounds 3] [--mib 256] [--addon other/dist/native/splice.node]
 *
 * Per round, in this process: once an event-loop turn, a 4 MiB Buffer is
 * allocated (malloc: mmap, or brk once glibc's threshold has risen) and its
 * first 256 KiB written, and that step timed ("a step"), for as long as the
 * addon takes to fault `--mib` MiB of fresh chunk memory in (64 MiB Buffers
 * from `alloc`, 8 MiB a call, as lib/net/zero-copy.ts asks); and the same for
 * as long again with nothing faulted in (the reference), before it in even
 * rounds and after it in odd ones. Prints, for each, the steps done, their
 * p50, p99 and max, and the CPU this process used. The chunk memory is held
 * to the end (no round's unmapping lands in another's measurement), so each
 * round faults memory this process never used. `--addon` loads another
 * build's splice.node (a path), to compare.
 */
const MiB = 1024 ** 2

interface Addon {
  alloc(size: number): Buffer
  populate(b: Buffer, offset: number, length: number): Promise<number>
}

const program = new Command('populate-stall')
  .description("the event loop's allocation latency while the splice addon faults chunk memory in on libuv's pool, against none")
  .addOption(new Option('--rounds <n>', 'rounds').argParser(positiveInt('rounds')).default(3))
  .addOption(new Option('--mib <n>', 'MiB of fresh chunk memory faulted in per round').argParser(positiveInt('mib')).default(256))
  .addOption(new Option('--addon <path>', "the splice addon to measure (default: this build's dist/native/splice.node)"))

interface Steps { steps: number; p50: number; p99: number; max: number; cpuMs: number; ms: number }

/** one allocation step a turn until `done()`, each step's duration in ms */
async function steps(done: () => boolean): Promise<Steps> {
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
  return { steps: lat.length, p50: at(0.5), p99: at(0.99), max: lat.at(-1) ?? 0, cpuMs: (cpu.user + cpu.system) / 1000, ms: performance.now() - t0 }
}

const line = (what: string, r: Steps) =>
  `${what}: ${r.steps} steps in ${r.ms.toFixed(0)} ms, a step p50 ${r.p50.toFixed(2)} / p99 ${r.p99.toFixed(2)} / max ${r.max.toFixed(2)} ms, CPU ${(r.cpuMs / r.ms).toFixed(2)} cores`

async function main(): Promise<void> {
  program.parse()
  const o = program.opts<{ rounds: number; mib: number; addon?: string }>()
  const path = o.addon === undefined ? fileURLToPath(new URL('../native/splice.node', import.meta.url)) : resolve(o.addon)
  const addon = createRequire(import.meta.url)(path) as Addon
  process.stdout.write(`populate-stall: ${o.mib} MiB per round, addon ${path}\n`)
  const ratios: number[] = []
  /** every round's chunk memory, held to the end */
  const held: Buffer[] = []
  /** how long the last round's faulting took */
  let took = 0
  for (let round = 1; round <= o.rounds; round++) {
    await new Promise(r => setTimeout(r, 2000))
    let quiet: Steps | undefined
    const reference = async () => {
      const until = performance.now() + took
      quiet = await steps(() => performance.now() >= until)
    }
    // the reference's length is the faulting's: in even rounds it goes first, as long as the round before's faulting took
    if (round % 2 === 0) await reference()
    let faulting = true
    const t0 = performance.now()
    const job = (async () => {
      for (let left = o.mib * MiB; left > 0; left -= 64 * MiB) {
        const b = addon.alloc(Math.min(64 * MiB, left))
        held.push(b)
        for (let off = 0; off < b.length; off += 8 * MiB) {
          const r = await addon.populate(b, off, Math.min(8 * MiB, b.length - off))
          if (r !== 0) throw new Error(`populate answered ${r}`)
        }
      }
    })().finally(() => { faulting = false })
    const during = await steps(() => !faulting)
    await job
    took = performance.now() - t0
    if (round % 2 === 1) await reference()
    process.stdout.write(`round ${round}: faulting ${o.mib} MiB in took ${took.toFixed(0)} ms\n`)
    process.stdout.write(`  ${line('while faulting in', during)}\n`)
    process.stdout.write(`  ${line('reference, nothing faulted in', quiet!)}\n`)
    ratios.push(during.p99 / Math.max(quiet!.p99, 0.001))
  }
  ratios.sort((a, b) => a - b)
  process.stdout.write(`a step's p99 while faulting in over the reference's: median ${ratios[ratios.length >> 1]!.toFixed(1)}× (${ratios[0]!.toFixed(1)}–${ratios.at(-1)!.toFixed(1)}×)\n`)
}

main().catch(err => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
