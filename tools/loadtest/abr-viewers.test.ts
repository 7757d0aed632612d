import t from 'tap'
import { abrFigures, drawLink, parseLinks, qoeLinear, type AbrViewer } from './abr-viewers.js'
import type { SessionReport } from '../../client/abr/play-session.js'

t.test('--links: Mb/s with optional weights, and a bad entry named', async t => {
  t.same(parseLinks('1.5:2, 4,25'), [{ bps: 1.5e6, weight: 2 }, { bps: 4e6, weight: 1 }, { bps: 25e6, weight: 1 }])
  t.throws(() => parseLinks('1.5,fast'), /link "fast": expected Mb\/s above 0/)
  t.throws(() => parseLinks('0'), /link "0"/)
  t.throws(() => parseLinks('4:0'), /link "4:0"/)
  t.throws(() => parseLinks(' , '), /at least one link/)
})

t.test('links are drawn by weight, the same for the same seed and viewer', async t => {
  const links = parseLinks('1:3,10:1')
  const draws = Array.from({ length: 4000 }, (_, i) => drawLink(links, 7, i))
  const slow = draws.filter(b => b === 1e6).length / draws.length
  t.ok(Math.abs(slow - 0.75) < 0.03, `a quarter-weight link drawn ${(100 * (1 - slow)).toFixed(1)} % of the time`)
  t.equal(drawLink(links, 7, 12), draws[12])
})

const report = (o: Partial<SessionReport>): SessionReport => ({ contentId: 'm', firstServer: 'http://e/', lastServer: 'http://e/', startupS: 1, playedS: 60,
  durationS: 60, ended: true, stalls: 0, stallS: 0, stallTimesS: [], rungsPlayed: [], rungSwitches: 0, serverSwitches: 0, trials: 0, failovers: 0,
  abandons: 0, bytesReceived: 0, bytesFromOrigin: 0, averageBps: 0, rungs: [], ...o })

t.test('figures: time share and bytes per rung over all viewers, switches per viewer and per minute, the average bitrate', async t => {
  const rungs = (lo: number, hi: number) => [{ name: 'v240', bandwidth: 1e6, height: 240, seconds: lo, bytes: lo * 125_000 },
    { name: 'v720', bandwidth: 3e6, height: 720, seconds: hi, bytes: hi * 375_000 }]
  const viewers: AbrViewer[] = [{ linkBps: 1.5e6, report: report({ rungs: rungs(60, 0) }) },
    { linkBps: 25e6, report: report({ rungs: rungs(20, 40), rungSwitches: 3, serverSwitches: 1, trials: 1 }) }]
  const f = abrFigures(viewers)
  t.same(f.links, { 1500000: 1, 25000000: 1 })
  t.same(f.rungs.map(g => [g.name, g.seconds, g.share]), [['v240', 80, 80 / 120], ['v720', 40, 40 / 120]])
  t.equal(f.rungs[1]!.bytes, 40 * 375_000)
  t.equal(f.averageBps, (80 * 1e6 + 40 * 3e6) / 120)
  t.equal(f.rungSwitchesPerViewer, 1.5)
  t.equal(f.rungSwitchesPerMinute, 3 / 2)
  t.equal(f.serverSwitches, 1)
  t.same(abrFigures([]).rungs, [])
})

t.test('QoE per segment: bitrate, less each change, less 4.3 per second of stall', async t => {
  const rungs = [{ name: 'a', bandwidth: 1e6, height: 1, seconds: 0, bytes: 0 }, { name: 'b', bandwidth: 3e6, height: 2, seconds: 0, bytes: 0 }]
  t.equal(qoeLinear({ rungsPlayed: [1, 1, 1, 1], rungs, stallS: 0 }), 3, 'steady on the top rung')
  t.equal(qoeLinear({ rungsPlayed: [0, 1, 0, 1], rungs, stallS: 0 }), (1 + 3 + 1 + 3 - 3 * 2) / 4, 'oscillating costs each change')
  t.equal(qoeLinear({ rungsPlayed: [1, 1], rungs, stallS: 1 }), (6 - 4.3) / 2, 'a second of stall')
  t.equal(qoeLinear({ rungsPlayed: [], rungs, stallS: 0 }), 0)
})
