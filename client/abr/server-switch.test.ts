import t from 'tap'
import { rungFor } from './rule.js'
import { SERVER_SWITCH_DEFAULTS, ServerSwitch, type ServerView } from './server-switch.js'
import { simulate, type SimOptions } from './simulate.js'

/**
 * The server-switch rule: on its own, then in simulated ten-minute sessions
 * where servers deliver different shares (client/abr/simulate.ts).
 */
const ladder = [300_000, 700_000, 1_200_000, 3_000_000, 5_000_000]
const rungOf = (bps: number) => rungFor(ladder, bps * 0.9)
const v = (key: number, bps: number | undefined, at = 0): ServerView<number> => ({ key, bps, at })

t.test('low for lowForS, then the first server whose recent estimate is better by the gain', async t => {
  const s = new ServerSwitch<number>(SERVER_SWITCH_DEFAULTS)
  const others = [v(1, 1.1e6, 0), v(2, 6e6, 0), v(3, 8e6, 0)]
  t.same(s.decide(0, v(0, 1e6), others, rungOf, 4), { kind: 'stay' }, 'low starts now')
  t.same(s.decide(19, v(0, 1e6), others, rungOf, 4), { kind: 'stay' }, 'not yet 20 s')
  t.same(s.decide(20, v(0, 1e6), others, rungOf, 4), { kind: 'switch', to: 2 }, 'server 1 is not 1.3x better; 2 is, and comes before 3')
})

t.test('a dip shorter than lowForS, or the top rung sustained, moves nothing', async t => {
  const s = new ServerSwitch<number>(SERVER_SWITCH_DEFAULTS)
  const others = [v(1, 8e6, 0)]
  s.decide(0, v(0, 1e6), others, rungOf, 4)
  s.decide(15, v(0, 1e6), others, rungOf, 4)
  t.same(s.decide(16, v(0, 6e6, 16), others, rungOf, 4), { kind: 'stay' }, 'the top rung is sustained: low ends')
  t.same(s.decide(30, v(0, 1e6, 30), others, rungOf, 4), { kind: 'stay' }, 'low again from 30 s')
  t.same(s.decide(49, v(0, 1e6, 49), others, rungOf, 4), { kind: 'stay' })
  t.same(s.decide(50, v(0, 1e6, 50), others, rungOf, 4), { kind: 'switch', to: 1 })
})

t.test('with no recent evidence, a trial of the next server in order, at most once per retryS', async t => {
  const s = new ServerSwitch<number>(SERVER_SWITCH_DEFAULTS)
  const stale = v(1, 8e6, -200) // measured 200 s ago: older than historyS
  s.decide(0, v(0, 1e6), [stale, v(2, undefined)], rungOf, 4)
  t.same(s.decide(20, v(0, 1e6), [stale, v(2, undefined)], rungOf, 4), { kind: 'trial', to: 1 }, 'stale history is no evidence: try 1 again')
  t.same(s.decide(22, v(0, 1e6), [v(1, 1e6, 21), v(2, undefined)], rungOf, 4), { kind: 'stay' }, 'the trial found 1 no better; the next trial waits')
  t.same(s.decide(79, v(0, 1e6), [v(1, 1e6, 21), v(2, undefined)], rungOf, 4), { kind: 'stay' })
  t.same(s.decide(80, v(0, 1e6), [v(1, 1e6, 21), v(2, undefined)], rungOf, 4), { kind: 'trial', to: 2 }, '60 s later, the next one')
  t.same(s.decide(150, v(0, 1e6), [v(1, 1e6, 21), v(2, 1e6, 81)], rungOf, 4), { kind: 'trial', to: 1 }, '1\'s evidence is stale again')
})

t.test('bad options are refused by name', async t => {
  t.throws(() => new ServerSwitch({ ...SERVER_SWITCH_DEFAULTS, gain: 0.5 }), /gain/)
  t.throws(() => new ServerSwitch({ ...SERVER_SWITCH_DEFAULTS, lowForS: -1 }), /lowForS/)
})

const session = (capacity: SimOptions['capacity'], servers: number) =>
  simulate({ bitrates: ladder, segmentS: 2, segments: 300, startupS: 2, maxBufferS: 30, capacity, servers })

t.test('a slow server: one trial of the next, a switch, and the top rung there', async t => {
  // server 0 gives this viewer 0.8 Mb/s, server 1 8 Mb/s; the viewer's own link is not the limit
  const r = session((_, s) => (s === 0 ? 0.8e6 : 8e6), 2)
  const trials = r.steps.filter(s => s.trial)
  const moved = r.steps.findIndex(s => s.server === 1 && !s.trial)
  t.equal(trials.length, 1, 'one trial')
  t.equal(r.controller.serverSwitches, 1, 'one switch')
  t.ok(moved > 0 && r.steps[moved]!.at < 40, `on server 1 from ${r.steps[moved]!.at.toFixed(1)} s`)
  t.ok(r.steps.slice(moved).every(s => s.server === 1), 'and stays there')
  const top = r.steps.find(s => s.server === 1 && s.rung === 4)
  t.ok(top && top.at < 60, `the top rung by ${top?.at.toFixed(1)} s`)
  t.same(r.clock.stalls, [])
})

t.test('a slow link, not a slow server: a trial a minute at most, no switch', async t => {
  const r = session(() => 0.8e6, 3)
  const trials = r.steps.filter(s => s.trial)
  t.equal(r.controller.serverSwitches, 0, 'no switch')
  t.ok(trials.length >= 2 && trials.length <= 600 / 60, `${trials.length} trials in ten minutes`)
  for (let i = 1; i < trials.length; i++) t.ok(trials[i]!.at - trials[i - 1]!.at >= 60, 'a minute apart at least')
  t.same([...new Set(trials.slice(0, 2).map(s => s.server))], [1, 2], 'the servers in failover order')
  t.same(r.clock.stalls, [])
})

t.test('the next server in order is tried first, then the one after', async t => {
  // server 1 is as slow as 0; server 2 is fast
  const r = session((_, s) => (s === 2 ? 8e6 : 0.8e6), 3)
  const trials = r.steps.filter(s => s.trial)
  t.same(trials.slice(0, 2).map(s => s.server), [1, 2], 'server 1, then server 2')
  t.equal(r.controller.serverSwitches, 1)
  t.equal(r.steps[r.steps.length - 1]!.server, 2, 'ends on server 2')
})
