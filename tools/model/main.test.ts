import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CLI } from '../../test/helpers/spawn.js'
import { catalog, uniformDeployment } from './deployment.js'
import { parseFailure } from './main.js'

/** `reelcdn model` as users run it: a small case end to end, and bad input. */
function model(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise(resolve => execFile(process.execPath, [CLI, 'model', ...args], { timeout: 30_000 },
    (e, out, err) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err })))
}

const SMALL = ['--titles', '100', '--sessions', '3000', '--hours', '3', '--edges', '4', '--edge-capacity', '5%']

t.test('a small deployment: a row per steering, a failure judged, run time and peak RSS', async t => {
  const dir = t.testdir()
  const json = join(dir, 'r.json')
  const r = await model([...SMALL, '--steering', 'load,affinity+hot', '--peer-fill', '--fail-edge', 's0:1@120', '--json', json])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^load {18}0\.\d{3}/m)
  t.match(r.out, /^affinity\+hot {10}0\.\d{3}/m)
  t.match(r.out, /affinity\+hot: edge s0:1 at 120 min \(judged at site s0\)/)
  t.match(r.out, /run time [0-9.]+ s \(CPU [0-9.]+ s\), peak RSS [0-9.]+ MiB/)
  const runs = JSON.parse(readFileSync(json, 'utf8')).runs as { name: string; result: { overall: { byteHitRatio: number }; failures: { keysMoved: number }[] } }[]
  t.same(runs.map(x => x.name), ['load', 'affinity+hot'])
  t.ok(runs[1]!.result.failures[0]!.keysMoved > 10, 'the failed edge\'s titles are counted')
  t.ok(runs[1]!.result.overall.byteHitRatio > runs[0]!.result.overall.byteHitRatio, 'affinity beats load-only on one site of four edges')
})

t.test('a saved trace replays to the same figures', async t => {
  const dir = t.testdir()
  const trace = join(dir, 'trace.txt')
  const a = await model([...SMALL, '--steering', 'affinity', '--save-trace', trace, '--warmup', '36'])
  t.equal(a.code, 0, a.err)
  const b = await model([...SMALL, '--steering', 'affinity', '--trace', trace, '--warmup', '36'])
  t.equal(b.code, 0, b.err)
  const row = (s: string) => s.split('\n').find(l => l.startsWith('affinity '))
  t.ok(row(a.out))
  t.equal(row(b.out), row(a.out))
})

t.test('bad input gets a clear error and a failing exit code', async t => {
  const dir = t.testdir()
  const noEdges = join(dir, 'dep.json')
  writeFileSync(noEdges, JSON.stringify({ titles: [10], sites: [{ id: 'ams', edges: [] }] }))
  // one error of each kind through the real CLI (the others are checked in-process, below and in inputs.test.ts)
  for (const [args, re] of [
    [['--steering', 'load,nearest'], /unknown steering "nearest"; known: load, affinity, affinity\+hot/],
    [['--deployment', noEdges], /site ams has no edges/],
    [['--policy', 'fifo'], /unknown policy "fifo"; known: lru, s3fifo/],
  ] as [string[], RegExp][]) {
    const r = await model([...args, '--sessions', '10'])
    t.not(r.code, 0, args.join(' '))
    t.match(r.err, re, args.join(' '))
    t.notMatch(r.err, /\n\s+at /, 'no stack')
  }
})

t.test('failure specs name a site by id or index, and an edge that exists', async t => {
  const dep = uniformDeployment({ sites: 2, edgesPerSite: 3, edgeCapacity: '10%', titles: catalog(10, 2, 4, 1) })
  t.match(parseFailure('s1:2@90', 'edge', dep), { kind: 'edge', site: 1, edge: 2, atMs: 90 * 60_000, label: 'edge s1:2' })
  t.match(parseFailure('0@1.5', 'site', dep), { kind: 'site', site: 0, atMs: 90_000, label: 'site s0' })
  t.throws(() => parseFailure('s9:0@10', 'edge', dep), /--fail-edge s9:0@10: no site s9 \(2 sites\)/)
  t.throws(() => parseFailure('s0:3@10', 'edge', dep), /site s0 has 3 edges \(indexes from 0\)/)
  t.throws(() => parseFailure('s0@soon', 'site', dep), /expected <site>@<minute>/)
})
