#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8'

/**
 * The `reelcdn` command.
 *
 * A service (edge, router, origin, or all of them as `cluster`) compiles its
 * code when it loads, not when a function first runs (V8's --no-lazy), so
 * its first requests do not pay for compiling the code they run: a fresh
 * edge's first miss reached its first byte 25–30 ms after the router's own
 * lazily, 13–17 ms eagerly, for about 0.2 s more start-up and a few MiB of
 * bytecode (docs/benchmarks.md, "A fresh edge's first request"). The flag
 * must be set before the code loads, hence the dynamic import; the other
 * commands (ingest, token, loadtest…) start faster as they were.
 */
const SERVICES = new Set(['edge', 'router', 'origin', 'cluster'])
if (SERVICES.has(process.argv[2] ?? '')) setFlagsFromString('--no-lazy')

const { program } = await import('./program.js')
await program().parseAsync(process.argv)
