import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { planSessions } from './audience.js'
import { loadScenario, premiereFirst } from './main.js'
import { Zipf } from './random.js'

/**
 * The audiences the scenarios describe, drawn from the seed alone: the plan
 * `playersMode` plays. (test/system/loadtest.test.ts runs each scenario
 * against a cluster.)
 */
const titles = Array.from({ length: 50 }, (_, i) => ({ contentId: `t${i}`, size: 1e9 }))
const share = (plan: { contentId: string }[], id: string) => plan.filter(p => p.contentId === id).length / plan.length

t.test('premiere: the new title takes half the plays, all arriving within a minute', async t => {
  const s = loadScenario('premiere')
  const plan = planSessions(s, titles, 1)
  t.equal(plan.length, s.players)
  t.ok(plan.every(p => p.arrivalS < 60), `last arrival at ${plan[plan.length - 1]!.arrivalS.toFixed(1)} s`)
  const premiere = plan.filter(p => p.contentId === 't0').length
  t.ok(premiere >= 0.4 * plan.length && premiere <= 0.6 * plan.length, `${premiere} of ${plan.length} plays`)
  // over many sessions, exactly half: the premiere is not also the top of the Zipf draw
  const many = planSessions(s, titles, 1, 20_000)
  t.ok(Math.abs(share(many, 't0') - 0.5) < 0.015, `premiere share ${share(many, 't0')}`)
  const z = new Zipf(49, s.zipf)
  t.ok(Math.abs(share(many, 't1') - 0.5 * z.probability(0)) < 0.015, `t1 share ${share(many, 't1')} (Zipf rank 1 of the rest)`)
})

t.test('prime-time: a steady Zipf audience', async t => {
  const s = loadScenario('prime-time')
  t.equal(s.premiereShare, 0)
  const plan = planSessions(s, titles, 1, 20_000)
  const z = new Zipf(titles.length, s.zipf)
  for (const k of [0, 1, 9]) t.ok(Math.abs(share(plan, `t${k}`) - z.probability(k)) < 0.012, `rank ${k}: ${share(plan, `t${k}`)} vs ${z.probability(k)}`)
  const gaps = plan.slice(1).map((p, i) => p.arrivalS - plan[i]!.arrivalS)
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length
  t.ok(Math.abs(mean - s.arrivalS) < 0.05 * s.arrivalS, `mean gap ${mean} s`)
})

t.test('long-tail: flat popularity', async t => {
  const s = loadScenario('long-tail')
  const plan = planSessions(s, titles, 1, 20_000)
  const shares = titles.map(x => share(plan, x.contentId))
  t.ok(Math.max(...shares) < 0.03 && Math.min(...shares) > 0.012, `shares from ${Math.min(...shares)} to ${Math.max(...shares)}`)
})

t.test('session lengths follow the abandonment curve', async t => {
  const s = { ...loadScenario('prime-time'), completeShare: 0.2, meanWatchedShare: 0.3, sessionS: 1000 }
  const plan = planSessions(s, titles, 2, 20_000)
  const whole = plan.filter(p => p.watchS === 1000).length / plan.length
  // the complete share, plus the exponential draws of 1 or more (e^(-1/0.3) of the rest)
  const expected = 0.2 + 0.8 * Math.exp(-1 / 0.3)
  t.ok(Math.abs(whole - expected) < 0.015, `${whole} watch it all, expected ${expected}`)
  const partial = plan.filter(p => p.watchS < 1000)
  t.ok(partial.every(p => p.watchS > 0))
  t.ok(partial.length > 0.7 * plan.length)
})

t.test('bitrates are drawn by weight, and the plan depends on the seed alone', async t => {
  const s = loadScenario('prime-time')
  const plan = planSessions(s, titles, 3, 20_000)
  const total = s.bitrates.reduce((a, b) => a + b.weight, 0)
  for (const b of s.bitrates) {
    const got = plan.filter(p => p.bps === b.bps).length / plan.length
    t.ok(Math.abs(got - b.weight / total) < 0.015, `${b.bps} bps: ${got}`)
  }
  t.same(planSessions(s, titles, 3, 50), plan.slice(0, 50))
  t.notSame(planSessions(s, titles, 4, 50), plan.slice(0, 50))
})

t.test('a scenario with a missing field is refused by name', async t => {
  const file = join(t.testdir(), 'bad.json')
  const { zipf: _, ...rest } = loadScenario('prime-time')
  writeFileSync(file, JSON.stringify(rest))
  t.throws(() => loadScenario(file), /zipf must be a non-negative number/)
  t.throws(() => loadScenario('/nonexistent/x.json'), /cannot read scenario/)
})

t.test('--premiere puts its title first, where the premiere share goes', async t => {
  const ts = [{ contentId: 'a' }, { contentId: 'b' }, { contentId: 'c' }]
  t.same(premiereFirst(ts, 'c').map(x => x.contentId), ['c', 'a', 'b'])
  t.same(premiereFirst(ts, undefined).map(x => x.contentId), ['a', 'b', 'c'])
  t.throws(() => premiereFirst(ts, 'z'), /--premiere z is not among the titles/)
  const plan = planSessions(loadScenario('premiere'), premiereFirst(titles, 't7'), 1, 5000)
  t.ok(Math.abs(share(plan, 't7') - 0.5) < 0.03, `t7 takes ${share(plan, 't7')}`)
})
