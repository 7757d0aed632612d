import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TestCluster, randomBody } from '../system/harness.js'
import { CLI } from '../helpers/spawn.js'
import type { RepairReport } from '../../router/repair/repair-report.js'

/**
 * Issue 14, item 17: `reelcdn router repair > report.json` must give a JSON
 * file: log lines go to stderr, the report alone to stdout. Its exit codes
 * (2: something left under-replicated, lost, or a shard unreachable) are in
 * --help.
 */
const CS = 65536

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise(resolve => execFile(process.execPath, [CLI, ...args], { env: { ...process.env, REELCDN_SHARD_TOKEN: '' } },
    (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr })))
}

t.test('with a shard down, `router repair` writes only its JSON report on stdout, its log lines on stderr, and exits 2', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  t.equal((await c.ingest('film', randomBody(3 * CS))).status, 201)
  await c.stopShard(2)
  const cfg = join(c.dir, 'repair.json')
  // the log level an operator has by default: the CLI's warnings must show, on stderr
  await writeFile(cfg, JSON.stringify({ cluster: c.config().cluster, log: { level: 'info' } }))
  const r = await run(['router', 'repair', '-c', cfg, '--rate', '0'])
  let report: RepairReport | undefined
  try { report = JSON.parse(r.stdout) as RepairReport } catch { /* checked below */ }
  t.ok(report, `stdout is the JSON report and nothing else: ${JSON.stringify(r.stdout.slice(0, 200))}`)
  t.same(report?.unreachable, ['shard-3'], 'the report names the unreachable shard')
  t.equal(r.code, 2, 'exit code 2: a shard could not be checked')
  const logs = r.stderr.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as { msg: string; shard?: string })
  t.ok(logs.some(l => /unreachable/.test(l.msg) && l.shard === 'shard-3'), 'the warning is a log line on stderr')
})

t.test('`router repair --help` documents its exit codes', async t => {
  const r = await run(['router', 'repair', '--help'])
  t.equal(r.code, 0)
  // commander wraps the description to the terminal's width
  const help = r.stdout.replace(/\s+/g, ' ')
  t.match(help, /[Ee]xit code/)
  t.match(help, /\b2 when chunks are left under-replicated or lost/, 'names 2 for under-replicated')
})
