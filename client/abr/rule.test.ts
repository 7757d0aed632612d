import t from 'tap'
import { mulberry32 } from '../../lib/random.js'
import { ABR_DEFAULTS, abandonTo, bolaParams, bolaRung, chooseRung, initialAbrState, minBufferFor, rungFor } from './rule.js'
import { simulate, switchesAfter, type SimOptions } from './simulate.js'

/**
 * The ABR rule in simulated time (client/abr/simulate.ts): ten-minute
 * sessions over links of known capacity, run in milliseconds.
 */
const ladder = [300_000, 700_000, 1_200_000, 3_000_000, 5_000_000]
const session = (capacity: SimOptions['capacity'], o: Partial<SimOptions> = {}) =>
  simulate({ bitrates: ladder, segmentS: 2, segments: 300, startupS: 2, maxBufferS: 30, capacity, ...o })

t.test('rungFor: the highest rung at or below a throughput, else the lowest', async t => {
  t.equal(rungFor(ladder, 100), 0)
  t.equal(rungFor(ladder, 700_000), 1)
  t.equal(rungFor(ladder, 2_999_999), 2)
  t.equal(rungFor(ladder, 1e12), 4)
})

t.test('BOLA: the lowest rung on a short buffer, the top one near the target, monotonic between', async t => {
  const p = bolaParams(ladder, 10, 26)
  t.equal(bolaRung(p, ladder, 0), 0)
  t.equal(bolaRung(p, ladder, 10), 0)
  t.equal(bolaRung(p, ladder, 26), 4)
  const rungs = Array.from({ length: 161 }, (_, i) => bolaRung(p, ladder, i / 4))
  t.ok(rungs.every((q, i) => i === 0 || q >= rungs[i - 1]!), 'never lower on a fuller buffer (0-40 s)')
  // minBufferFor is where BOLA starts to prefer that rung
  for (let q = 1; q < ladder.length; q++) {
    const m = minBufferFor(p, ladder, q)
    t.equal(bolaRung(p, ladder, m + 0.01), q, `rung ${q} from ${m.toFixed(2)} s`)
    t.ok(bolaRung(p, ladder, m - 0.01) < q)
  }
})

t.test('the throughput rule keeps a safety margin, and more of one to step up', async t => {
  const s = initialAbrState(0)
  const at = (bps: number, rung: number) => chooseRung({ bufferS: 4, estimateBps: bps, bitrates: ladder, segmentS: 2, maxBufferS: 30, playing: false },
    { ...s, rung }).rung
  t.equal(at(3_000_000, 0), 2, '3 Mb/s: 0.8 × 3 = 2.4 Mb/s to step up, so 1.2 Mb/s')
  t.equal(at(3_300_000, 2), 2, '3.3 Mb/s: 0.9 × 3.3 = 2.97 Mb/s, so 1.2 Mb/s still')
  t.equal(at(3_500_000, 2), 2, '3.5 Mb/s: up needs 0.8 × 3.5 = 2.8 Mb/s, below 3 Mb/s')
  t.equal(at(3_500_000, 3), 3, '3.5 Mb/s: 0.9 × 3.5 = 3.15 Mb/s keeps 3 Mb/s')
  t.equal(at(3_200_000, 3), 2, '3.2 Mb/s: 0.9 × 3.2 = 2.88 Mb/s drops 3 Mb/s')
  t.equal(chooseRung({ bufferS: 0, estimateBps: undefined, bitrates: ladder, segmentS: 2, maxBufferS: 30, playing: false }, s).rung, 0,
    `no sample yet: ${ABR_DEFAULTS.startBps / 1000} kb/s assumed`)
})

t.test('a link just above the lowest rung settles on it, with no stall after start-up', async t => {
  const r = session(() => 1.25 * ladder[0]!)
  t.same(r.clock.stalls, [], 'no stall')
  t.ok(r.clock.startupS! < 4, `start-up ${r.clock.startupS!.toFixed(2)} s`)
  t.same([...new Set(r.steps.map(s => s.rung))], [0], 'every segment at the lowest rung')
  t.equal(r.clock.playedS, 600, 'played to the end')
})

t.test('an unlimited link climbs to the top rung at once and stays', async t => {
  const r = session(() => 1e9)
  t.same(r.clock.stalls, [])
  const firstTop = r.steps.findIndex(s => s.rung === 4)
  t.ok(firstTop >= 1 && firstTop <= 2, `top rung from segment ${firstTop}`)
  t.ok(r.steps.slice(firstTop).every(s => s.rung === 4), 'never leaves it')
})

t.test('a steady link between two rungs: the lower one, no oscillation', async t => {
  for (const mbps of [0.85, 1.0, 1.5, 2.0, 2.9, 3.5, 4.0, 5.4]) {
    const r = session(() => mbps * 1e6)
    const sustainable = rungFor(ladder, mbps * 1e6 * ABR_DEFAULTS.safety)
    const late = r.steps.filter(s => s.at >= 60)
    t.same(r.clock.stalls, [], `${mbps} Mb/s: no stall`)
    t.equal(switchesAfter(r.steps, 60), 0, `${mbps} Mb/s: no switch after the first minute`)
    t.ok(late.every(s => s.rung === late[0]!.rung), `${mbps} Mb/s: one rung (${late[0]!.rung})`)
    t.equal(late[0]!.rung, sustainable, `${mbps} Mb/s: the rung sustainable at the safety factor`)
  }
})

t.test('a link that wavers ±20 % around the middle of two rungs rarely switches', async t => {
  for (const seed of [1, 2, 3]) {
    const rng = mulberry32(seed)
    // a new capacity each second, uniform in ±20 % of 2 Mb/s (between 1.2 and 3 Mb/s)
    const per = new Map<number, number>()
    const r = session(tt => {
      const k = Math.floor(tt)
      if (!per.has(k)) per.set(k, 2e6 * (0.8 + 0.4 * rng()))
      return per.get(k)!
    })
    const minutes = (r.endS - 60) / 60
    const n = switchesAfter(r.steps, 60)
    t.same(r.clock.stalls, [], `seed ${seed}: no stall`)
    t.ok(n / minutes <= 0.5, `seed ${seed}: ${n} switches in ${minutes.toFixed(1)} min after the first`)
  }
})

t.test('a link that drops mid-play switches down before the buffer runs out', async t => {
  for (const after of [0.4e6, 0.8e6, 1.5e6]) {
    const r = session(tt => (tt < 120 ? 8e6 : after))
    // drop[0] is the first segment the slow link carries; the decision after it sees the slowdown
    const drop = r.steps.filter(s => s.at >= 120)
    const sustainable = rungFor(ladder, after * ABR_DEFAULTS.safety)
    const down = drop.findIndex(s => s.rung <= sustainable)
    const minBuffer = Math.min(...drop.map(s => s.bufferS))
    t.same(r.clock.stalls, [], `${after / 1e6} Mb/s after the drop: no stall`)
    const firstDown = drop.findIndex(s => s.rung < drop[0]!.rung)
    t.ok(firstDown >= 1 && firstDown <= 2, `down within two decisions of the first slow segment: at ${firstDown}, rung ${drop[0]!.rung} to ${drop[firstDown]?.rung}`)
    t.ok(down >= 0, `down to a sustainable rung (${sustainable}) after ${down} segments, with ${drop[down]?.bufferS.toFixed(1)} s buffered`)
    t.ok(minBuffer > 4, `the buffer never fell below ${minBuffer.toFixed(1)} s after the drop`)
    t.equal(switchesAfter(r.steps, 240), 0, 'settled a minute later')
  }
})

t.test('a link that rises climbs within half a minute', async t => {
  const r = session(tt => (tt < 100 ? 1e6 : 10e6))
  const top = r.steps.find(s => s.at >= 100 && s.rung === 4)
  t.ok(top, 'reaches the top rung')
  t.ok(top!.at - 100 < 30, `${(top!.at - 100).toFixed(1)} s after the rise`)
  t.same(r.clock.stalls, [])
})

t.test('a download that would eat the buffer is given up for a lower rung', async t => {
  // 10 Mbit at the top rung; 1 s in, 0.4 Mbit have come: 24 s to go, 29 s buffered
  const p = { rung: 4, elapsedS: 1, loadedBytes: 50_000, totalBytes: 1_250_000, bufferS: 29, segmentS: 2, playing: true }
  t.equal(abandonTo(p, ladder), 0, 'at 0.4 Mb/s, the lowest rung (0.3 Mb/s sustained at 0.9)')
  t.equal(abandonTo({ ...p, bufferS: 31 }, ladder), undefined, 'what is left fits in 0.8 of the buffer: finish it')
  t.equal(abandonTo({ ...p, elapsedS: 0.2, loadedBytes: 10_000 }, ladder), undefined, 'too early to judge')
  t.equal(abandonTo({ ...p, playing: false }, ladder), undefined, 'not while starting or stalled: nothing plays meanwhile')
  t.equal(abandonTo({ ...p, rung: 0 }, ladder), undefined, 'nothing lower')
  // at 4 Mb/s with 3 s buffered: 2 s to go, 0.8 × 3 = 2.4 s: finish
  t.equal(abandonTo({ ...p, loadedBytes: 500_000, elapsedS: 1, bufferS: 3 }, ladder), undefined)
  const r = session(tt => (tt < 120 ? 8e6 : 0.4e6))
  const gaveUp = r.steps.filter(s => s.abandoned)
  t.equal(gaveUp.length, 1, 'one download given up')
  t.ok(gaveUp[0]!.at >= 118 && gaveUp[0]!.rung === 4, `the top-rung segment in flight when the link fell, at ${gaveUp[0]!.at.toFixed(1)} s`)
  const after = r.steps.filter(s => s.at >= 120 && !s.abandoned)
  t.ok(Math.min(...after.map(s => s.bufferS)) > 20, `the buffer stayed above ${Math.min(...after.map(s => s.bufferS)).toFixed(1)} s`)
})
