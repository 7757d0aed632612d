import t from 'tap'
import { runCli } from '../helpers/spawn.js'

/**
 * From a read-only audit (stop 41): `reelcdn loadtest simulate` with
 * `--titles 0` died with a RangeError's stack, `--sessions 0` printed NaN and
 * exited 0, and `--sizes 5,x` printed a row of NaN and exited 0. Each now
 * exits 2 with one line naming the flag, as the other commands do.
 */
for (const [flags, named] of [[['--titles', '0'], /--titles/], [['--sessions', '0'], /--sessions/], [['--sizes', '5,x'], /--sizes/],
  [['--sizes', '0'], /--sizes/], [['--sizes', '150'], /--sizes/], [['--zipf', '-1'], /--zipf/]] as const) {
  t.test(`loadtest simulate ${flags.join(' ')}: a one-line refusal naming the flag`, async t => {
    const r = await runCli(['loadtest', 'simulate', '--sessions', '50', '--titles', '20', ...flags])
    t.not(r.code, 0, 'a non-zero exit')
    t.match(r.stderr, named)
    t.notMatch(r.stderr, /\n\s+at /, 'no stack')
    t.notMatch(r.stdout, /NaN/)
  })
}

t.test('loadtest simulate with sane flags still runs', async t => {
  const r = await runCli(['loadtest', 'simulate', '--sessions', '50', '--titles', '20', '--sizes', '5,20'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^ {2}5 % {2}/m)
})
