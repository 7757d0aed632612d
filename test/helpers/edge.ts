import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { loadConfig } from '../../lib/config/config.js'
import { quietLogger, type Logger } from '../../lib/logger.js'
import { startEdge, type RunningEdge } from '../../edge/main.js'
import type { HasTeardown } from './upstream.js'
import { until } from './until.js'

/**
 * Edges for tests: in-process on port 0 with a test directory for the disk
 * tier, small tiers and short timeouts, closed at teardown; plus a client
 * helper and a /metrics reader so tests assert on counters.
 */
type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

export type TestContext = HasTeardown & { testdirName: string }

export async function startTestEdge(t: TestContext, upstream: { url: string; token: string | undefined },
  overrides: Record<string, Json> = {}, env: NodeJS.ProcessEnv = {}, logger: Logger = quietLogger('edge'),
  /** the settings a reload loads (`edge.reload`), from the ones the edge started with */
  reload?: (started: Record<string, Json>) => Record<string, Json>): Promise<RunningEdge> {
  // outside tap's fixture dir: tap removes that at a teardown registered earlier (say by a TestCluster) than the edge's,
  // so it ran while the edge was still closing, and a file the edge wrote then (its request log) made it fail, ENOTEMPTY
  const dataDir = mkdtempSync(join(tmpdir(), 'reelcdn-test-edge-'))
  const settings: Record<string, Json> = {
    'edge.port': 0,
    'edge.upstream': upstream.url,
    'edge.dataDir': dataDir,
    'edge.ramBytes': 64 * 1024 ** 2,
    'edge.diskBytes': 256 * 1024 ** 2,
    'edge.accessFlushMs': 100,
    // mechanism tests run on LRU, whose evictions they can predict; policy tests choose their own
    'edge.ramPolicy': 'lru',
    'edge.diskPolicy': 'lru',
    'http.shutdownGraceMs': 500,
    // issue 5: no background traffic to the upstream unless a test asks for it
    'edge.prefill.window': 'never',
    // nor memory faulted in behind the start (a 64 MiB chunk at the default chunk size, for every test edge)
    'edge.ramPrefault': false,
    'edge.heartbeatMs': 0,
    'edge.demandReportMs': 0,
    ...overrides,
  }
  let edge: RunningEdge
  try {
    const config = loadConfig({ env: {}, overrides: settings })
    edge = await startEdge(config, { logger, ...(reload ? { reload: () => loadConfig({ env: {}, overrides: reload(settings) }) } : {}),
      env: { ...(upstream.token ? { REELCDN_EDGE_UPSTREAM_TOKEN: upstream.token } : {}), ...env } })
  } catch (err) {
    // an edge that refused to start (a test may expect it to) leaves no directory behind either
    rmSync(dataDir, { recursive: true, force: true })
    throw err
  }
  t.teardown(async () => {
    try {
      await edge.close()
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
  return edge
}

/** A new directory under the test's fixture directory (which tap removes afterwards); t.testdir() would wipe it. */
export function freshDir(t: { testdirName: string }): string {
  mkdirSync(t.testdirName, { recursive: true })
  return mkdtempSync(join(t.testdirName, 'edge-'))
}

export interface Got {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

export async function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  const res = await request(url, { method, headers })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, body }
}

/** Sum of a metric's samples whose labels include all of `labels`. */
export async function metric(baseUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await get(`${baseUrl}/metrics`)).body.toString('utf8')
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const lbl = m[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3])
  }
  return sum
}

/**
 * Waits until an edge has no fill in flight and no disk write queued. tap
 * removes a test's directory in the first teardown (t.testdir() registered it
 * before the edge's close), so a test ends with this rather than race a
 * readahead's disk write against the removal.
 */
export function settled(edge: RunningEdge): Promise<void> {
  return until(() => edge.fills.size === 0 && edge.cache.disk.pendingWrites === 0, 'the edge to settle')
}

export { until }
