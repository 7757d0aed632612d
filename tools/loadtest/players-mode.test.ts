import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { playersCeiling } from './players-ceiling.js'
import { playersMode, type Scenario } from './players-mode.js'
import { planSessions } from './audience.js'

/**
 * Players runs against small in-memory servers: both bounds, a server that
 * stops sending, failed reads, seeks, and the generator's ceiling.
 */
async function rangeServer(t: Test, o: { hang?: boolean } = {}) {
  let requests = 0
  const size = 64 * 1024 ** 2
  const body = Buffer.alloc(1024 * 1024, 3)
  const s = createServer((req, res) => {
    requests++
    // the player's probe
    if (req.method === 'HEAD') return res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes', etag: '"x"' }).end()
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!
    const from = Number(m[1])
    const len = Math.min(body.length, Number(m[2]) - from + 1)
    res.writeHead(206, { 'content-length': len, 'content-range': `bytes ${from}-${from + len - 1}/${size}`, etag: '"x"' })
    // hang: answer the probe, then send the headers of every range and never its body
    if (o.hang) return
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

t.test('the request bound ends a run at once, not at the next arrival', async t => {
  const srv = await rangeServer(t)
  const sparse: Scenario = { ...quick, players: 3, arrivalS: 600 }
  const titles = [{ contentId: 'x', size: srv.size }]
  const second = planSessions(sparse, titles, 1)[1]!.arrivalS
  t.ok(second > 20, `the second player arrives at ${second.toFixed(1)} s`)
  const r = await playersMode({ scenario: sparse, titles, durationS: 60, speed: 1, seed: 1, maxRequests: 5,
    play: async id => ({ contentId: id, urls: [{ url: srv.url }] }) })
  t.ok(r.durationS < 10, `stopped after ${r.durationS.toFixed(1)} s`)
  t.equal(r.players!.sessions, 1, 'only the first player came')
})

t.test('an aborted signal ends a run, as its bounds do', async t => {
  const srv = await rangeServer(t)
  const stop = new AbortController()
  setTimeout(() => stop.abort(), 500)
  const r = await playersMode({ scenario: { ...quick, players: 50, arrivalS: 30 }, titles: [{ contentId: 'x', size: srv.size }], durationS: 60,
    speed: 1, seed: 1, signal: stop.signal, play: async id => ({ contentId: id, urls: [{ url: srv.url }] }) })
  t.ok(r.durationS < 5, `stopped after ${r.durationS.toFixed(1)} s`)
  t.equal(r.players!.failed, 0, 'stopped sessions are not failures')
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
    if (req.method === 'HEAD') return res.writeHead(200, { 'content-length': 100000000, etag: '"y"' }).end()
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

t.test('waiting for the buffer after a seek is not a stall', async t => {
  // openings answer at once, every other range after 150 ms: only a seek empties the buffer
  const size = 64 * 1024 ** 2
  const body = Buffer.alloc(1024 * 1024, 5)
  const s = createServer((req, res) => {
    if (req.method === 'HEAD') return res.writeHead(200, { 'content-length': size, etag: '"s"' }).end()
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
