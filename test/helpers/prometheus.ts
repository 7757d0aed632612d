import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { request } from 'undici'
import { aptInstall } from '../../lib/apt.js'

/**
 * A real Prometheus for the dashboard and alert tests (issue 18): Debian's
 * `prometheus` package (it carries promtool), installed with apt when missing
 * as the tests install ffmpeg and chromium; if that is impossible the test
 * fails saying so rather than skipping. The server runs as a child process of
 * the test on a free loopback port with its own config, rules and TSDB in a
 * temp dir, and is stopped by its PID at teardown.
 */
const run = promisify(execFile)
export const PROMETHEUS = '/usr/bin/prometheus'
export const PROMTOOL = '/usr/bin/promtool'

export async function ensurePrometheus(): Promise<void> {
  if (existsSync(PROMETHEUS) && existsSync(PROMTOOL)) return
  try {
    // no service start: Debian's package would start its own Prometheus on :9090
    await aptInstall(['prometheus'], { noServiceStarts: true, noRecommends: true })
  } catch (err) {
    throw new Error(`prometheus is missing and could not be installed (apt-get install prometheus): ${(err as Error).message}`)
  }
  for (const p of [PROMETHEUS, PROMTOOL]) if (!existsSync(p)) throw new Error(`apt-get installed prometheus but ${p} is missing`)
}

/** `promtool <args>`: its exit code and output (promtool prints its findings on stdout and stderr). */
export async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(PROMTOOL, args, { timeout: 30_000 })
    return { code: 0, output: stdout + stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

export interface ScrapeJob {
  name: string
  /** base URLs (http or https) whose /metrics to scrape */
  urls: string[]
  /** CA for an https job's self-signed certificate */
  caFile?: string
}

export interface PromVector { metric: Record<string, string>; value: [number, string] }
export interface PromResult { status: string; error?: string; data?: { resultType: string; result: unknown[] } }

export interface RunningPrometheus {
  url: string
  proc: ChildProcess
  /** GET /api/v1/<path> with query parameters, parsed */
  api(path: string, params?: Record<string, string>): Promise<any>
  /** an instant query now */
  query(expr: string): Promise<PromResult>
  /** every metric name Prometheus holds a series of */
  metricNames(): Promise<Set<string>>
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

function yamlJob(j: ScrapeJob, interval: string): string {
  const https = j.urls.some(u => u.startsWith('https:'))
  return [
    `  - job_name: ${j.name}`,
    `    scrape_interval: ${interval}`,
    `    scrape_timeout: ${interval}`,
    ...(https ? ['    scheme: https', '    tls_config:', `      ca_file: ${JSON.stringify(j.caFile ?? '')}`] : []),
    '    static_configs:',
    `      - targets: [${j.urls.map(u => JSON.stringify(new URL(u).host)).join(', ')}]`,
  ].join('\n')
}

export async function startPrometheus(t: { teardown(fn: () => unknown): void }, o: { jobs: ScrapeJob[]; ruleFiles: string[]; intervalS?: number }): Promise<RunningPrometheus> {
  await ensurePrometheus()
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-test-prometheus-'))
  const interval = `${o.intervalS ?? 1}s`
  const config = join(dir, 'prometheus.yml')
  writeFileSync(config, [
    'global:', `  scrape_interval: ${interval}`, `  evaluation_interval: ${interval}`,
    'rule_files:', ...o.ruleFiles.map(f => `  - ${JSON.stringify(f)}`),
    'scrape_configs:', ...o.jobs.map(j => yamlJob(j, interval)), '',
  ].join('\n'))
  const check = await promtool('check', 'config', config)
  if (check.code !== 0) throw new Error(`the test's Prometheus config is invalid: ${check.output}`)
  let proc: ChildProcess | undefined
  let url = ''
  let log = ''
  // the port is free when chosen, but another process may take it before Prometheus binds it: try again then
  for (let attempt = 0; attempt < 3 && proc === undefined; attempt++) {
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    const p = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h', '--log.level=warn', `--web.console.templates=${dir}`, `--web.console.libraries=${dir}`],
    { stdio: ['ignore', 'ignore', 'pipe'] })
    p.stderr!.on('data', (b: Buffer) => { log = (log + b.toString('utf8')).slice(-4000) })
    const exited = new Promise<number | null>(resolve => p.once('exit', code => resolve(code)))
    const ready = (async () => {
      for (const end = Date.now() + 20_000; Date.now() < end;) {
        try {
          const r = await request(`${url}/-/ready`)
          await r.body.dump()
          if (r.statusCode === 200) return true
        } catch { /* not listening yet */ }
        await new Promise(r => setTimeout(r, 100))
      }
      return false
    })()
    const outcome = await Promise.race([ready, exited.then(() => 'exited' as const)])
    if (outcome === true) proc = p
    else {
      p.kill('SIGKILL')
      if (outcome !== 'exited' || !/address already in use/i.test(log)) {
        rmSync(dir, { recursive: true, force: true })
        throw new Error(`prometheus did not become ready: ${log.trim().slice(-1500)}`)
      }
    }
  }
  if (!proc) throw new Error(`prometheus found no free port: ${log.trim().slice(-500)}`)
  const running = proc
  t.teardown(async () => {
    const gone = new Promise(resolve => running.once('exit', resolve))
    if (running.exitCode === null) running.kill('SIGTERM')
    await Promise.race([gone, new Promise(r => setTimeout(r, 5000))])
    if (running.exitCode === null) running.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  const api = async (path: string, params: Record<string, string> = {}) => {
    const r = await request(`${url}/api/v1/${path}?${new URLSearchParams(params)}`)
    return r.body.json()
  }
  return {
    url, proc: running, api,
    query: expr => api('query', { query: expr }) as Promise<PromResult>,
    async metricNames() { return new Set(((await api('label/__name__/values')) as { data: string[] }).data) },
  }
}
