import t from 'tap'
import { execFile } from 'node:child_process'
import { Command } from 'commander'
import { addFlags, configFromFlags } from '../../lib/cli.js'
import { edgeFlags } from '../../edge/main.js'
import { CLI } from '../helpers/spawn.js'

/**
 * Issue 14, item 19 (part): `edge --fill-window` sat beside --prefill-rate and
 * --prefill-budget; it is --prefill-window now, and the old name still works
 * (hidden from --help). The other part, a shard without a token warning at
 * start, is in issue-14-10-shard-writes-closed.test.ts.
 */
function parse(args: string[]) {
  const cmd = addFlags(new Command('edge').exitOverride(), edgeFlags)
  cmd.parse(args, { from: 'user' })
  return configFromFlags(cmd, edgeFlags, {})
}

t.test('--prefill-window sets the prefill window, and --fill-window still does', async t => {
  t.equal(parse(['--prefill-window', 'always']).edge.prefill.window, 'always')
  t.equal(parse(['--fill-window', '01:00-05:00']).edge.prefill.window, '01:00-05:00')
  t.equal(parse([]).edge.prefill.window, '02:00-14:00')
  t.equal(parse(['--prefill-window', 'always', '--fill-window', 'never']).edge.prefill.window, 'always', 'both: the new name wins')
})

t.test('edge --help lists --prefill-window next to --prefill-rate and --prefill-budget', async t => {
  const help = await new Promise<string>((resolve, reject) => execFile(process.execPath, [CLI, 'edge', '--help'],
    { env: { ...process.env, COLUMNS: '200' } }, (err, out) => (err ? reject(err) : resolve(out))))
  const lines = help.split('\n').filter(l => /--prefill-|--fill-window/.test(l)).map(l => l.trim().split(/\s+/)[0])
  t.same(lines, ['--prefill-window', '--prefill-rate', '--prefill-budget'])
})
