import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { planSessions } from '../../tools/loadtest/audience.js'
import { httpMode } from '../../tools/loadtest/http-mode.js'
import { loadScenario } from '../../tools/loadtest/main.js'
import { playersMode, type Scenario } from '../../tools/loadtest/players-mode.js'
import type { LoadResult } from '../../tools/loadtest/report.js'
import { discoverTitles, routerPlay } from '../../tools/loadtest/target.js'
import { metric, startTestEdge, until } from '../helpers/edge.js'
import { openReport } from '../helpers/report-browser.js'
import { CLI } from '../helpers/spawn.js'
import { EDGE_TOKEN, TestCluster, randomBody } from './harness.js'

/**
 * Each load test mode, briefly, against an in-process cluster (three shards,
 * a router, an edge): the figures it reports must be what the servers counted.
 * The CLI runs as a child process against the same cluster, on a pipe and on
 * a terminal (script(1)), and its HTML report is opened in Chromium.
 */
const CS = 256 * 1024
const SIZES = { alpha: 8 * CS - 1000, beta: 6 * CS - 1000, gamma: 4 * CS - 1000 }

async function cluster(t: Test, o: { steering?: boolean } = {}) {
  const c = await TestCluster.start(t, { chunkSize: CS })
  for (const [id, n] of Object.entries(SIZES)) t.equal((await c.ingest(id, randomBody(n))).status, 201)
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, {
    'edge.ramBytes': 8 * CS, 'edge.diskBytes': 64 * CS, 'cluster.chunkSize': CS,
    ...(o.steering ? { 'edge.heartbeatMs': 50, 'edge.id': 'edge-lt' } : {}) }, o.steering ? { REELCDN_EDGE_TOKEN: EDGE_TOKEN } : {})
  return { c, edge }
}

/** The servers' own view: edge bytes served, hit bytes and upstream bytes, the router's bytes served. */
async function counted(edgeUrl: string, routerUrl: string) {
  const served = await metric(edgeUrl, 'reelcdn_edge_bytes_served_total')
  // a hit is a byte from RAM or disk (lib/metrics.ts); one joined from a fill in flight is not
  const hits = (await metric(edgeUrl, 'reelcdn_edge_bytes_served_total', { result: 'ram_hit' })) +
    (await metric(edgeUrl, 'reelcdn_edge_bytes_served_total', { result: 'disk_hit' }))
  return { served, hits, upstream: await metric(edgeUrl, 'reelcdn_edge_upstream_bytes_total'),
    router: await metric(routerUrl, 'reelcdn_router_bytes_served_total') }
}

const fillsDone = (edgeUrl: string) => until(async () => (await metric(edgeUrl, 'reelcdn_edge_fills_in_flight')) === 0, 'edge fills done')

t.test('http mode: requests, bytes and hit ratio are what the edge counted', async t => {
  const { c, edge } = await cluster(t)
  const titles = await discoverTitles(edge.url, ['alpha', 'beta', 'gamma'])
  t.same(titles.map(x => x.size), Object.values(SIZES))
  // an edge has no catalog: the router's lists the titles, their sizes come from the edge
  await t.rejects(discoverTitles(edge.url, undefined), /an edge has no catalog: pass --catalog/, 'an edge alone: a hint, not a bare 404')
  const listed = await discoverTitles(edge.url, undefined, {}, c.url)
  t.same(listed.map(x => x.contentId).sort(), ['alpha', 'beta', 'gamma'], 'titles from the router\'s catalog')
  t.same(listed.map(x => x.size).sort((a, b) => a - b), Object.values(SIZES).sort((a, b) => a - b), 'sizes from the edge')
  const before = await counted(edge.url, c.url)
  const responsesBefore = await metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'range' })
  const r = await httpMode({ target: edge.url, titles, zipf: 1, rangeBytes: 64 * 1024, openingShare: 0.2, connections: 4,
    durationS: 60, requests: 300, seed: 3, measureCeiling: false, metrics: { edges: [edge.url], router: c.url } })
  const after = await counted(edge.url, c.url)
  t.equal(r.http!.requests, 300, 'bounded by the request count')
  t.same(r.http!.errorsByStatus, {}, 'no errors')
  t.equal(await metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'range' }) - responsesBefore, 300, 'the edge answered 300 ranges')
  t.equal(after.served - before.served, 300 * 64 * 1024, 'the edge served every byte asked for, no more')
  t.equal(r.cache!.edgeBytesServed, after.served - before.served, 'bytes served: the edge\'s count')
  t.equal(r.cache!.byteHitRatio, (after.hits - before.hits) / (after.served - before.served), 'byte hit ratio: the edge\'s counts')
  t.ok(r.cache!.byteHitRatio! > 0.5, `hits after the first fills (${r.cache!.byteHitRatio})`)
  // on the wire: the bodies and ~200 bytes of headers each
  const wire = r.http!.mbps * 1e6 * r.durationS
  t.ok(wire >= 300 * 64 * 1024 && wire < 300 * (64 * 1024 + 1024), `${wire} bytes on the wire`)
  await fillsDone(edge.url)
  const settled = await counted(edge.url, c.url)
  t.equal(settled.router - before.router, settled.upstream - before.upstream, 'the router sent the edge its fills and nothing else')
  t.ok(r.cache!.routerBytesServed! <= settled.router - before.router)
})

t.test('players mode through /v1/play: bytes and hit ratio are what the servers counted', async t => {
  const { c, edge } = await cluster(t, { steering: true })
  await until(async () => ((await (await request(`${c.url}/v1/play/alpha`)).body.json()) as { urls: { kind: string }[] })
    .urls.some(u => u.kind === 'edge'), '/v1/play names the edge')
  const titles = await discoverTitles(c.url, undefined)
  t.same(titles.map(x => x.contentId).sort(), ['alpha', 'beta', 'gamma'], 'titles from the router\'s catalog')
  const scenario: Scenario = { name: 'test', players: 6, arrivalS: 0.05, zipf: 1, bitrates: [{ bps: 8_000_000, weight: 1 }],
    startupS: 0.5, bufferS: 2, sessionS: 8, completeShare: 1, meanWatchedShare: 1, seekChance: 0, premiereShare: 0 }
  const before = await counted(edge.url, c.url)
  const r = await playersMode({ scenario, titles, durationS: 20, speed: 4, seed: 5, play: routerPlay(c.url, false),
    metrics: { edges: [edge.url], router: c.url } })
  const after = await counted(edge.url, c.url)
  const p = r.players!
  t.equal(p.sessions, 6)
  t.equal(p.failed, 0, 'no failed sessions')
  t.equal(p.cutBeforeStart, 0)
  t.same(Object.values(p.plays!).reduce((a, b) => a + b, 0), 6)
  t.equal(r.cache!.edgeBytesServed, after.served - before.served, 'edge bytes: the edge\'s count')
  t.equal(r.cache!.byteHitRatio, (after.hits - before.hits) / (after.served - before.served), 'byte hit ratio: the edge\'s counts')
  t.ok(p.startupMs.p50 > 0 && p.startupMs.p50 <= p.startupMs.p95! && p.startupMs.p95! <= p.startupMs.p99, 'start-up percentiles ordered')
  t.ok(p.rebufferRatio >= 0 && p.rebufferRatio < 0.5, `rebuffer ratio ${p.rebufferRatio}`)
  // the edge answers its probes at once, so players read nothing from the router (their last resort)
  await fillsDone(edge.url)
  const settled = await counted(edge.url, c.url)
  const direct = (settled.router - before.router) - (settled.upstream - before.upstream)
  t.ok(after.served - before.served > 0, `the edge served ${after.served - before.served} bytes`)
  t.equal(direct, 0, 'no player byte from the router')
  t.equal(p.bytesFromOrigin, 0, 'the players counted none either')
  t.equal(p.bytesReceived, after.served - before.served, 'bytes received = edge served')
  t.equal(r.cache!.originOffload, 1 - r.cache!.routerBytesServed! / p.bytesReceived, 'origin offload from the router\'s bytes')
  t.equal(r.timeline[r.timeline.length - 1]!.hitRatioSoFar, r.cache!.byteHitRatio, 'the timeline ends at the run\'s hit ratio')
})

t.test('players mode on one edge: bytes received equal the edge\'s bytes served', async t => {
  const { c, edge } = await cluster(t)
  const titles = await discoverTitles(edge.url, ['alpha', 'beta', 'gamma'])
  const scenario: Scenario = { name: 'test', players: 6, arrivalS: 0.05, zipf: 1, bitrates: [{ bps: 8_000_000, weight: 1 }],
    startupS: 0.5, bufferS: 2, sessionS: 8, completeShare: 1, meanWatchedShare: 1, seekChance: 0.01, premiereShare: 0 }
  const before = await counted(edge.url, c.url)
  const r = await playersMode({ scenario, titles, durationS: 20, speed: 4, seed: 5,
    play: async id => ({ contentId: id, urls: [{ url: `${edge.url}/v1/content/${id}` }] }), metrics: { edges: [edge.url] } })
  const after = await counted(edge.url, c.url)
  const p = r.players!
  t.equal(p.sessions, 6)
  t.equal(p.failed, 0, 'no failed sessions')
  t.ok(p.bytes > 0 && p.bytes <= p.bytesReceived, `played ${p.bytes} of ${p.bytesReceived} received`)
  t.equal(p.bytesReceived, after.served - before.served, 'bytes received equal the edge\'s bytes served')
  // the throughput over time adds up to the same bytes: each point's rate over the interval it spans (a loaded loop's
  // timer fires late: a second's point may span 1.1 s, and its bytes are not its rate)
  const sum = r.timeline.reduce((a, x, i) => a + x.mbps * (x.t - (r.timeline[i - 1]?.t ?? 0)), 0)
  t.ok(Math.abs(sum * 1e6 - p.bytesReceived) < 1, `the timeline adds up to ${Math.round(sum * 1e6)} bytes, received ${p.bytesReceived}`)
  t.equal(r.cache!.byteHitRatio, (after.hits - before.hits) / (after.served - before.served), 'byte hit ratio: the edge\'s counts')
  t.ok(r.cache!.byteHitRatio! > 0, `byte hit ratio ${r.cache!.byteHitRatio}`)
  t.equal(r.cache!.originOffload, 1 - (after.upstream - before.upstream) / (after.served - before.served), 'offload from the edge\'s upstream bytes')
})

for (const name of ['prime-time', 'premiere', 'long-tail']) {
  t.test(`scenario ${name} runs against the cluster as planned`, async t => {
    const { edge } = await cluster(t)
    const titles = await discoverTitles(edge.url, ['alpha', 'beta', 'gamma'])
    const scenario = { ...loadScenario(name), players: 8 }
    const r = await playersMode({ scenario, titles, durationS: 3, graceMs: 2000, speed: 4, seed: 2,
      play: async id => ({ contentId: id, urls: [{ url: `${edge.url}/v1/content/${id}` }] }), metrics: { edges: [edge.url] } })
    const p = r.players!
    t.equal(r.scenario, name)
    t.equal(p.failed, 0, 'no failed sessions')
    t.ok(p.sessions >= 4, `${p.sessions} sessions started`)
    const planned: Record<string, number> = {}
    for (const s of planSessions(scenario, titles, 2).slice(0, p.sessions)) planned[s.contentId] = (planned[s.contentId] ?? 0) + 1
    t.same(p.plays, planned, 'each session played its planned title')
    t.ok(p.bytesReceived > 0 && r.cache!.edgeBytesServed === p.bytesReceived, 'the edge served what the players received')
  })
}

interface Ran { code: number | null; stdout: string; stderr: string }
function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm' } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', d => { stdout += d })
    child.stderr.on('data', d => { stderr += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${args.join(' ')}: no exit after ${timeoutMs} ms\n${stderr}`)) }, timeoutMs)
    child.on('exit', code => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}
const cli = (args: string[]) => run(process.execPath, [CLI, 'loadtest', ...args])
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

t.test('the CLI: plain progress lines on a pipe, a redrawn line on a terminal, the ceiling, result.json and a report that renders', async t => {
  const { c, edge } = await cluster(t)
  const dir = join(c.dir, 'loadtest') // not t.testdir(): it would empty the cluster's directories
  // http on a pipe, with the generator's ceiling
  const h = await cli(['http', '--target', edge.url, '--titles', 'alpha,beta,gamma', '--range-size', '64KiB,128KiB', '--duration', '3',
    '--requests', '100000', '--connections', '2', '--progress-interval', '1', '--out', join(dir, 'http')])
  t.equal(h.code, 0, h.stderr)
  const lines = h.stderr.split('\n').filter(l => l.startsWith('loadtest http'))
  t.ok(lines.length >= 3, `${lines.length} plain progress lines`)
  t.notMatch(h.stderr, /[\r\x1b]/, 'no control characters on a pipe')
  t.match(lines[0], /^loadtest http \d+\/3 s {2}\d+ req\/s {2}[\d.]+ MB\/s {2}hit ratio so far [\d.]+ % {2}offload so far (-?[\d.]+ %|n\/a)$/)
  t.match(h.stdout, /generator ceiling [\d.]+ MB\/s/)
  t.match(h.stdout, /latency ms p50 [\d.]+ p90 [\d.]+ p99 [\d.]+ max [\d.]+/)
  const hr = JSON.parse(readFileSync(join(dir, 'http', 'result.json'), 'utf8')) as LoadResult
  t.ok(hr.generatorCeilingMBps! > 0 && hr.http!.requests > 0 && hr.cache!.edgeBytesServed > 0)

  // players on a terminal (script(1) gives the child a pty), with its ceiling; at half speed no session ends before the run
  const out = join(dir, 'players')
  const cmd = [process.execPath, CLI, 'loadtest', 'players', '--target', edge.url, '--titles', 'alpha,beta,gamma', '--players', '4',
    '--duration', '3', '--speed', '0.5', '--out', out].map(shellQuote).join(' ')
  const p = await run('script', ['-qec', cmd, '/dev/null'])
  t.equal(p.code, 0, p.stdout)
  t.match(p.stdout, /\r\x1b\[2Kloadtest players \d+\/3 s {2}sessions \d+ playing, \d+ done {2}[\d.]+ MB\/s {2}hit ratio so far [\d.]+ % {2}offload so far (-?[\d.]+ %|n\/a)/, 'redrawn in place')
  t.match(p.stdout, /\r\x1b\[2Kloadtest players done\r?\n/)
  t.match(p.stdout, /generator ceiling [\d.]+ MB\/s/)
  t.match(p.stdout, /start-up ms p50 \d+ p95 \d+ p99 \d+/)
  const pr = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as LoadResult
  t.ok(pr.generatorCeilingMBps! > 0, `players ceiling ${pr.generatorCeilingMBps} MB/s`)
  t.equal(pr.players!.failed, 0)

  for (const [what, file, expect] of [['players', join(out, 'report.html'), ['Throughput', 'Byte hit ratio and origin offload at the edges', 'Start-up delay', 'Stall durations']],
    ['http', join(dir, 'http', 'report.html'), ['Throughput', 'Byte hit ratio and origin offload at the edges', 'Latency']]] as const) {
    const seen = await openReport(file)
    t.same(seen.charts.map(c => c.label), expect, `${what}: its charts`)
    for (const c of seen.charts.filter(c => c.label !== 'Stall durations'))
      t.ok(c.width > 100 && (c.lines.some(n => n >= 2) || c.bars > 0), `${what}: ${c.label} drawn (${c.lines} line points, ${c.bars} bars)`)
    t.same(seen.requests, [], `${what}: the page fetched nothing`)
    t.same(seen.problems, [], `${what}: no console errors`)
  }
})

t.test('targets off this machine are refused without --allow-remote, before any request', async t => {
  const h = await cli(['http', '--target', 'http://192.0.2.1:8080', '--duration', '1', '--out', t.testdir()])
  t.equal(h.code, 1)
  t.equal(h.stderr, 'reelcdn: target http://192.0.2.1:8080 is not on this machine: pass --allow-remote to load a remote server\n')
  const p = await cli(['players', '--router', 'http://cdn.example.com', '--duration', '1', '--out', t.testdir()])
  t.equal(p.code, 1)
  t.match(p.stderr, /target http:\/\/cdn\.example\.com is not on this machine: pass --allow-remote/)
  const m = await cli(['http', '--target', 'http://127.0.0.1:1', '--edge-metrics', 'http://10.0.0.1:8080', '--duration', '1', '--out', t.testdir()])
  t.equal(m.code, 1)
  t.match(m.stderr, /target http:\/\/10\.0\.0\.1:8080 is not on this machine/, 'metrics URLs too')
  const b = await cli(['http', '--target', 'http://127.0.0.1:1', '--requests', '0', '--out', t.testdir()])
  t.not(b.code, 0)
  t.match(b.stderr, /--requests must be a whole number of at least 1/, 'no unbounded run')
})
