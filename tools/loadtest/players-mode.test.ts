import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { loadScenario, premiereFirst } from './main.js'
import { planSessions, playersCeiling, playersMode, type Scenario } from './players-mode.js'
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

async function rangeServer(t: Test, o: { hang?: boolean } = {}) {
  let requests = 0
  const size = 64 * 1024 ** 2
  const body = Buffer.alloc(1024 * 1024, 3)
  const s = createServer((req, res) => {
    requests++
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!
    const from = Number(m[1])
    const len = Math.min(body.length, Number(m[2]) - from + 1)
    res.writeHead(206, { 'content-length': len, 'content-range': `bytes ${from}-${from + len - 1}/${size}`, etag: '"x"' })
    // hang: answer the probe, then send the headers of every range and never its body
    if (o.hang && req.headers.range !== 'bytes=0-0') return
    res.end(body.subarray(0, len))
  })
  await new Promise<void>(r => s.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1/content/x`
  return { url, size, requests: () => requests }
}

const quick: Scenario = { name: 'quick', players: 4, arrivalS: 0, zipf: 1, bitrates: [{ bps: 8_000_000, weight: 1 }],
  startupS: 0.5, bufferS: 2, sessionS: 600, completeShare: 1, meanWatchedShare: 1, seekChance: 0, premiereShare: 0 }

t.test('players stop at the request bound', async t => {
  const srv = await rangeServer(t)
  const r = await playersMode({ scenario: quick, titles: [{ contentId: 'x', size: srv.size }], durationS: 30, speed: 4, seed: 1, maxRequests: 20,
    play: async id => ({ contentId: id, urls: [{ url: srv.url }] }) })
  t.ok(r.durationS < 15, `stopped after ${r.durationS.toFixed(1)} s`)
  t.ok(r.players!.requests! >= 20, `${r.players!.requests} requests counted`)
  // at most one range in flight per player when the bound is reached
  t.ok(srv.requests() <= 20 + quick.players, `the server saw ${srv.requests()}`)
  t.equal(r.players!.failed, 0)
})

t.test('a server that stops sending cannot hold a run past its duration and grace', async t => {
  const srv = await rangeServer(t, { hang: true })
  const t0 = performance.now()
  const r = await playersMode({ scenario: quick, titles: [{ contentId: 'x', size: srv.size }], durationS: 1, graceMs: 500, speed: 1, seed: 1,
    play: async id => ({ contentId: id, urls: [{ url: srv.url }] }) })
  const s = (performance.now() - t0) / 1000
  t.ok(s < 4, `ended after ${s.toFixed(1)} s`)
  t.equal(r.players!.sessions, 4)
  t.equal(r.players!.cutBeforeStart, 4, 'no session reached its start-up threshold: all cut, none in the start-up figures')
  t.same(r.players!.startupMs.samples, [])
  t.equal(r.players!.failed, 0, 'cut by the run\'s end is not a failure')
})

t.test('a session whose reads fail is a failed session, not a long stall', async t => {
  const s = createServer((req, res) => {
    if (req.headers.range === 'bytes=0-0') return res.writeHead(206, { 'content-length': 1, 'content-range': 'bytes 0-0/100000000', etag: '"y"' }).end('x')
    res.writeHead(500, { 'content-length': 0 }).end()
  })
  await new Promise<void>(r => s.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1/content/y`
  const r = await playersMode({ scenario: { ...quick, players: 2 }, titles: [{ contentId: 'y', size: 1e8 }], durationS: 10, speed: 1, seed: 1,
    play: async id => ({ contentId: id, urls: [{ url }] }) })
  t.ok(r.durationS < 5, `over after ${r.durationS.toFixed(1)} s`)
  t.equal(r.players!.failed, 2)
  t.match(r.players!.errors, [/answered 500/])
})

t.test('the players ceiling reads through the player client from memory', async t => {
  const mbps = await playersCeiling({ ...quick, players: 2 }, 1)
  t.ok(mbps > 5, `${mbps.toFixed(0)} MB/s`)
})

t.test('--premiere puts its title first, where the premiere share goes', async t => {
  const ts = [{ contentId: 'a' }, { contentId: 'b' }, { contentId: 'c' }]
  t.same(premiereFirst(ts, 'c').map(x => x.contentId), ['c', 'a', 'b'])
  t.same(premiereFirst(ts, undefined).map(x => x.contentId), ['a', 'b', 'c'])
  t.throws(() => premiereFirst(ts, 'z'), /--premiere z is not among the titles/)
  const plan = planSessions(loadScenario('premiere'), premiereFirst(titles, 't7'), 1, 5000)
  t.ok(Math.abs(share(plan, 't7') - 0.5) < 0.03, `t7 takes ${share(plan, 't7')}`)
})

t.test('waiting for the buffer after a seek is not a stall', async t => {
  // openings answer at once, every other range after 150 ms: only a seek empties the buffer
  const size = 64 * 1024 ** 2
  const body = Buffer.alloc(1024 * 1024, 5)
  const s = createServer((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!
    const from = Number(m[1])
    const len = Math.min(body.length, Number(m[2]) - from + 1)
    const send = () => res.writeHead(206, { 'content-length': len, 'content-range': `bytes ${from}-${from + len - 1}/${size}`, etag: '"s"' })
      .end(body.subarray(0, len))
    if (from < 4 * 1024 * 1024) send()
    else setTimeout(send, 150)
  })
  await new Promise<void>(r => s.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1/content/s`
  // 1 Mbps, a 4 s buffer (512 KiB): the opening never runs dry in 2 s; a seek every 10 ticks on average lands past 4 MiB
  const scenario: Scenario = { ...quick, players: 2, bitrates: [{ bps: 1_000_000, weight: 1 }], startupS: 0.5, bufferS: 4, seekChance: 0.1 }
  const r = await playersMode({ scenario, titles: [{ contentId: 's', size }], durationS: 2, speed: 1, seed: 3,
    play: async id => ({ contentId: id, urls: [{ url }] }) })
  const p = r.players!
  t.equal(p.failed, 0)
  t.ok(p.seeks! >= 2, `${p.seeks} seeks`)
  t.ok(p.seekWaitMs!.p50 >= 100, `seek waits p50 ${p.seekWaitMs!.p50.toFixed(0)} ms`)
  t.same(p.stallSamplesMs, [], 'no stalls')
  t.equal(p.rebufferRatio, 0)
})
