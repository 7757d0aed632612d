#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8'

/**
 * The `reelcdn` command.
 *
 * A service (edge, router, origin, or all of them as `cluster`) compiles its
 * code when it loads, not when a function first runs (V8's --no-lazy), so
 * its first requests do not pay for compiling the code they run: a fresh
 * edge's first miss reached its first byte 23–30 ms after the router's own
 * lazily, 10–15 ms eagerly, for about 0.2 s more start-up and a few MiB of
 * bytecode (docs/benchmarks.md, "A fresh edge's first request"). V8 may
 * still flush the bytecode of functions that have not run for a while, so
 * this is for a service's first requests. The flag is the process's, so it
 * is set back once the program has loaded: an edge's serve threads compile
 * lazily, as before. It must be set before the code loads, hence the
 * dynamic import; the tools (ingest, token, loadtest, and
 * a service's own subcommands such as `router repair` or `edge report`)
 * start as they were.
 */
const SERVICES = new Set(['edge', 'router', 'origin', 'cluster'])
const [command, next] = process.argv.slice(2)
// (not an edge's supervisor: it only starts and watches the edge, which is eager itself)
const eager = SERVICES.has(command ?? '') && (next === undefined || next.startsWith('-')) && !process.argv.includes('--supervise')
if (eager) setFlagsFromString('--no-lazy')

const { program } = await import('./program.js')
// the flag is the process's: code loaded from now on (an edge's serve threads, each of which would hold
// its own eagerly compiled copy of everything it imports, about 15 MiB a thread) compiles lazily again
if (eager) setFlagsFromString('--lazy')
await program().parseAsync(process.argv)
