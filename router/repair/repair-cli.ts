import { Command } from 'commander'
import { addFlags, commonFlags, configFromFlags, fail, type Flag } from '../../lib/cli.js'
import { createLogger } from '../../lib/logger.js'
import { Progress } from '../../lib/progress.js'
import { buildCluster } from '../build.js'
import type { RepairReport } from './repair-report.js'

/**
 * `reelcdn router repair`: one repair pass now, from this machine, with
 * progress. It needs only the cluster config and the shards' token: the
 * shards hold everything, so it can run beside live routers (every action is
 * idempotent). stdout carries the JSON report and nothing else (so
 * `> report.json` is a JSON file); log lines and progress go to stderr.
 */
export const EXIT_CODES = 'Exit code: 0 when every shard answered and nothing is left under-replicated or lost; ' +
  '2 when chunks are left under-replicated or lost, or a shard could not be reached (its copies were not checked); 1 on an error.'

const flags: Flag[] = [
  { flags: '--rate <MBps>', path: 'router.repair.rateMBps', kind: 'number', description: 'copy rate, 0 for unthrottled', unit: 'MB/s' },
  { flags: '--concurrency <n>', path: 'router.repair.concurrency', kind: 'int', description: 'chunk keys repaired at once' },
  ...commonFlags,
]

export function repairCommand(): Command {
  const cmd = new Command('repair')
    .summary('run one repair and rebalancing pass now, with progress')
    .description('Scan every shard and make each chunk and manifest hold exactly cluster.copies good replicas on its ' +
      'owners: copy missing ones, replace corrupt ones, delete misplaced copies once the owners hold theirs, and ' +
      'collect orphans older than router.repair.orphanGraceMs. Prints a JSON report on stdout, and nothing else: ' +
      'log lines and progress go to stderr. The report is also left on every shard reached, where every router\'s ' +
      '/v1/cluster and replica metrics find it. ' + EXIT_CODES)
    .option('--dry-run', 'only count what is wrong; change nothing')
  addFlags(cmd, flags)
  cmd.action(async () => {
    const config = configFromFlags(cmd, flags)
    // stderr: stdout is the report's alone
    const logger = createLogger('repair', config.log.level === 'info' ? 'warn' : config.log.level, process.stderr)
    const { cluster, repairer } = buildCluster(config, logger, process.env)
    repairer.ranBy = 'reelcdn router repair'
    const bar = new Progress({ label: 'repair', unit: 'items' })
    try {
      const report = await repairer.run({
        dryRun: cmd.opts<{ dryRun?: boolean }>().dryRun === true,
        onProgress: p => bar.update(p.scanned,
          `${p.phase}: checked ${p.scanned}${p.phase === 'chunks' ? ` of ~${p.estimatedChunks}` : ''}, copied ${p.copied} (${(p.bytesCopied / 1e6).toFixed(0)} MB), deleted ${p.deleted}`),
      })
      bar.finish(summary(report))
      process.stdout.write(JSON.stringify(report, null, 2) + '\n')
      if (report.unreachable.length) process.stderr.write(`repair: unreachable shards, not checked: ${report.unreachable.join(', ')}\n`)
      process.exitCode = report.remaining.underReplicated + report.remaining.lost + report.unreachable.length > 0 ? 2 : 0
    } catch (err) {
      fail(err)
    } finally {
      await cluster.close()
    }
  })
  return cmd
}

/** The last progress line: what was checked and done, and what is still wrong, without reading the JSON report. */
export function summary(r: RepairReport): string {
  const copied = r.chunks.copied + r.chunks.replaced + r.manifests.copied
  const deleted = r.chunks.misplacedDeleted + r.chunks.orphansDeleted + r.manifests.misplacedDeleted
  return `${r.dryRun ? 'dry run ' : ''}done: checked ${r.chunks.scanned} chunks and ${r.manifests.scanned} manifests, ` +
    `copied ${copied} (${(r.bytesCopied / 1e6).toFixed(1)} MB), deleted ${deleted}; ` +
    `left under-replicated ${r.remaining.underReplicated}, lost ${r.remaining.lost}, misplaced ${r.remaining.misplaced}, orphans ${r.remaining.orphans}`
}
