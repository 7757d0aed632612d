import t from 'tap'
import { loadConfig, type Config } from './config/config.js'
import { quietLogger } from './logger.js'
import { changedPaths, Reloader, type LiveSetting } from './reload.js'

/**
 * The reload mechanism alone: the diff by leaf (arrays whole), the scope, the
 * table's dispatch, a prepare's refusal leaving everything as it was, and a
 * setting that needs a restart keeping its running value so it is named again.
 */
const cfg = (o: Record<string, unknown>): Readonly<Config> => loadConfig({ env: {}, overrides: o as never })

t.test('changedPaths: leaves that differ, an array as one leaf', async t => {
  t.same(changedPaths({ a: { b: 1, c: [1, 2] }, d: 'x' }, { a: { b: 2, c: [1, 2, 3] }, d: 'x' }), ['a.b', 'a.c'])
})

t.test('one reload: applied by the entry that covers it, others need a restart, out-of-scope ignored, a refusal changes nothing', async t => {
  let next = cfg({})
  const applied: number[] = []
  let refuse = false
  const table: LiveSetting[] = [
    { paths: ['edge.ramBytes'], prepare: n => {
      if (refuse) throw new Error('no')
      return { applied: ['edge.ramBytes'], commit: () => { applied.push(n.edge.ramBytes) } }
    } },
  ]
  const r = new Reloader(cfg({}), () => next, table, quietLogger('test'), ['edge'])
  next = cfg({ 'edge.ramBytes': 1024, 'edge.maxFills': 3, 'router.port': 1234 })
  t.same(await r.reload('admin'), { ok: true, refused: false, applied: ['edge.ramBytes'], restartNeeded: ['edge.maxFills'], errors: [] })
  t.same(applied, [1024])
  t.equal(r.config.edge.maxFills, cfg({}).edge.maxFills, 'the restart-only setting keeps its running value')
  t.equal(r.config.edge.ramBytes, 1024)
  t.same((await r.reload('admin')).restartNeeded, ['edge.maxFills'], 'and is named again')
  refuse = true
  next = cfg({ 'edge.ramBytes': 2048 })
  const no = await r.reload('SIGHUP')
  t.ok(no.refused && no.errors[0] === 'no')
  t.equal(r.config.edge.ramBytes, 1024, 'a refused reload changes nothing')
  const r2 = new Reloader(cfg({}), () => { throw new Error('invalid configuration:\n  expected edge.ramBytes to be valid') }, table, quietLogger('test'))
  t.same((await r2.reload('admin')).errors, ['invalid configuration:', 'expected edge.ramBytes to be valid'])
})

t.test('a setting whose commit failed keeps its running value, so the next reload applies it again', async t => {
  let next = cfg({})
  const applied: number[] = []
  let fail = true
  const table: LiveSetting[] = [
    { paths: ['edge.ramBytes'], prepare: n => ({ applied: ['edge.ramBytes'], commit: () => {
      if (fail) throw new Error('the RAM tier could not be resized')
      applied.push(n.edge.ramBytes)
    } }) },
    { paths: ['edge.diskBytes'], prepare: n => ({ applied: ['edge.diskBytes'], commit: () => { applied.push(n.edge.diskBytes) } }) },
  ]
  const r = new Reloader(cfg({}), () => next, table, quietLogger('test'), ['edge'])
  next = cfg({ 'edge.ramBytes': 1024, 'edge.diskBytes': 4096 })
  const first = await r.reload('admin')
  t.same(first, { ok: false, refused: false, applied: ['edge.diskBytes'], restartNeeded: [], errors: ['the RAM tier could not be resized'] })
  t.equal(r.config.edge.ramBytes, cfg({}).edge.ramBytes, 'the failed setting keeps its running value')
  t.equal(r.config.edge.diskBytes, 4096, 'the one applied is in effect')
  fail = false
  const again = await r.reload('admin')
  t.same(again, { ok: true, refused: false, applied: ['edge.ramBytes'], restartNeeded: [], errors: [] }, 'the same file again applies it')
  t.same(applied, [4096, 1024])
  t.equal(r.config.edge.ramBytes, 1024)
})

t.test('a commit that changed something before it threw: the next reload applies the file again, even one put back as it was', async t => {
  let next = cfg({})
  let live = cfg({}).edge.ramBytes
  let fail = true
  const table: LiveSetting[] = [
    { paths: ['edge.ramBytes'], prepare: n => ({ applied: ['edge.ramBytes'], commit: () => {
      live = n.edge.ramBytes
      if (fail) throw new Error('half applied')
    } }) },
  ]
  const r = new Reloader(cfg({}), () => next, table, quietLogger('test'), ['edge'])
  next = cfg({ 'edge.ramBytes': 1024 })
  t.equal((await r.reload('admin')).ok, false)
  t.equal(live, 1024, 'the commit got as far as changing the value')
  fail = false
  next = cfg({})
  const back = await r.reload('admin')
  t.same(back.applied, ['edge.ramBytes'], 'the file put back as it was is applied, though it equals the value kept as running')
  t.equal(live, cfg({}).edge.ramBytes, 'the running value is the file\'s again')
  t.same((await r.reload('admin')).applied, [], 'and once it applied, nothing is left to do')
})
