import { fileURLToPath } from 'node:url'
import { waitForLine, type Child, type ProcessGroup } from './proc.js'
import { hugeMallocEnv } from '../../lib/malloc-tunables.js'

/**
 * reelcdn services as child processes, started the way an operator would
 * (`node dist/cli.js <service> …`), so the bench measures the real program,
 * with its own event loop and heap, not a server sharing the bench's process.
 * Port 0 everywhere: the service's 'ready' log line carries its URL.
 */
export const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url))

export interface RunningService {
  url: string
  pid: number
  child: Child
  stop(): Promise<void>
}

export interface ServiceOptions {
  nodeArgs?: string[]
  env?: NodeJS.ProcessEnv
  /** another build's dist/cli.js, to compare builds (default: this one) */
  cli?: string
}

/** The service options a row's --node-args and --cli ask for (every row starts reelcdn the same way). */
export function serviceOptions(o: { nodeArgs?: string[]; cli?: string }): ServiceOptions {
  return { ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}), ...(o.cli ? { cli: o.cli } : {}) }
}

export async function startService(procs: ProcessGroup, service: string, readyMsg: string, args: string[],
  opts: ServiceOptions = {}): Promise<RunningService> {
  const child = procs.spawn(`reelcdn ${service}`, process.execPath, [...(opts.nodeArgs ?? []), opts.cli ?? CLI, service, ...args],
    // as deployed (the units, the image, the supervisor): huge pages for malloc, unless the environment chose (lib/malloc-tunables.ts)
    { env: hugeMallocEnv({ ...process.env, ...opts.env }) })
  const url = await waitForLine(child, line => {
    if (!line.startsWith('{')) return undefined
    try {
      const j = JSON.parse(line) as { msg?: string; url?: string }
      return j.msg === readyMsg && typeof j.url === 'string' ? j.url : undefined
    } catch { return undefined }
  }, 60_000)
  // keep draining its output (bounded in Child) so a chatty service never blocks on a full pipe
  return { url, pid: child.pid, child, stop: () => child.stop('SIGTERM', 15_000) }
}

/** One origin shard on 127.0.0.1, port 0, scrubber off (a benchmark measures serving, not scrubbing). */
export function startOriginProcess(procs: ProcessGroup, dataDir: string, extra: string[] = [],
  opts: ServiceOptions = {}): Promise<RunningService> {
  return startService(procs, 'origin', 'origin shard ready',
    ['--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--scrub-rate', '0', '--log-level', 'info', ...extra], opts)
}
