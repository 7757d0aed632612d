import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ProcessGroup } from './proc.js'

/**
 * What a benchmark runs in: a temp directory and the group of processes it
 * starts. `cleanup()` (idempotent) stops every process and removes the
 * directory (kept with `keep`); Ctrl-C or SIGTERM cleans up and exits 130, and
 * an exit by any other path kills what is left at once, so a bench never
 * leaves servers behind.
 */
export interface Workspace {
  procs: ProcessGroup
  dir: string
  cleanup(): Promise<void>
}

export async function benchWorkspace(prefix: string, o: { keep?: boolean; log: (s: string) => void }): Promise<Workspace> {
  const procs = new ProcessGroup()
  const dir = await mkdtemp(join(tmpdir(), prefix))
  let cleaning: Promise<void> | undefined
  const cleanup = () => cleaning ??= (async () => {
    await procs.stopAll()
    if (!o.keep) await rm(dir, { recursive: true, force: true })
    else o.log(`kept ${dir}`)
  })()
  const onSignal = (sig: NodeJS.Signals) => {
    o.log(`${sig}: stopping the bench's servers and removing ${dir}`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', () => procs.killAllNow())
  return { procs, dir, cleanup }
}
