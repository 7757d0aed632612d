import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { setPath } from '../../lib/config/config.js'
import { runDoctor, type Role } from '../../tools/doctor/doctor.js'
import { exitCode } from '../../tools/doctor/main.js'
import type { Finding } from '../../tools/doctor/finding.js'
import { CLI } from '../helpers/spawn.js'
import { installSecrets, installSample, type Role as Sample } from '../helpers/deploy.js'
import { selfSigned } from '../helpers/tls.js'

/**
 * `reelcdn doctor`: the sample configs pass on a machine prepared as
 * docs/install.md says, and each thing that would stop a service fails by
 * name with what to fix. Most cases run the checks in-process (the open-file
 * limit and the clock given, and --offline), the exit codes through the CLI.
 */
const GOOD_CLOCK = { now: Date.now(), builtAt: Date.now() - 86_400_000, synced: 'yes' as const }
const SAMPLE: Record<Role, Sample> = { shard: 'shard', router: 'router', edge: 'edge', ingest: 'router' }

/** One directory per test (t.testdir() empties it on each call), each preparation in its own under it. */
const bases = new WeakMap<Test, string>()
function base(t: Test): string {
  let b = bases.get(t)
  if (!b) bases.set(t, b = t.testdir())
  return b
}

/** The role's sample installed in a test dir, with sizes a test machine has, free ports, and `patch` on top. */
async function prepared(t: Test, role: Role, patch: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(base(t), `${role}-`))
  const secrets = await installSecrets(dir)
  const file = installSample(SAMPLE[role], dir)
  const tree = JSON.parse(readFileSync(file, 'utf8')) as Record<string, never>
  const fit: Record<string, unknown> = { 'origin.port': 0, 'router.port': 0, 'edge.port': 0, 'origin.reserveBytes': 0,
    'edge.diskBytes': 64 * 1024 ** 2, 'edge.requestLogBytes': 0, ...patch }
  for (const [k, v] of Object.entries(fit)) setPath(tree, k, v as never)
  writeFileSync(file, JSON.stringify(tree))
  return { dir, file, secrets }
}

async function doctor(t: Test, role: Role, patch: Record<string, unknown> = {}, o: { env?: NodeJS.ProcessEnv; fdLimit?: number; clock?: typeof GOOD_CLOCK | Record<string, unknown> } = {}) {
  const p = await prepared(t, role, patch)
  const r = await runDoctor(role, { file: p.file, env: o.env ?? {}, offline: true, fdLimit: o.fdLimit ?? 65536, clock: (o.clock ?? GOOD_CLOCK) as never })
  return { ...p, r, failed: r.findings.filter(f => f.status === 'fail') }
}

const only = (fs: Finding[]) => fs.map(f => `${f.check}: ${f.message} (fix: ${f.fix})`).join('\n')

t.test('each role\'s sample config passes on a prepared machine', async t => {
  for (const role of ['shard', 'router', 'edge', 'ingest'] as const) {
    if (role === 'ingest' && !existsSync('/usr/bin/ffmpeg')) { t.comment('ingest skipped: no /usr/bin/ffmpeg here'); continue }
    const { r, failed } = await doctor(t, role)
    t.same(failed, [], `${role}: nothing fails${failed.length ? `\n${only(failed)}` : ''}`)
    t.equal(exitCode(r), 0, `${role}: exit 0`)
    for (const check of ['config', 'data-dir', 'disk-space', 'secret', 'clock']) t.ok(r.findings.some(f => f.check === check), `${role} checks ${check}`)
  }
})

t.test('an invalid config fails as config, naming the setting, exit 78', async t => {
  const { r } = await doctor(t, 'edge', { 'edge.ramPolicy': 'fifo' })
  t.match(r.findings, [{ check: 'config', status: 'fail', message: /edge\.ramPolicy/ }])
  t.equal(r.findings.length, 1, 'nothing else is checked without a config')
  t.equal(exitCode(r), 78)
  const rule = await doctor(t, 'edge', { 'edge.diskWriteQueueBytes': 1024 })
  t.match(rule.failed, [{ check: 'config', message: /edge.diskWriteQueueBytes \(1024\) holds less than one chunk/ }], 'what the edge refuses at start')
  t.equal(exitCode(rule.r), 78)
})

t.test('a port in use fails, naming it and the setting', async t => {
  const busy = createServer()
  await new Promise<void>(r => busy.listen(0, '127.0.0.1', r))
  t.teardown(() => busy.close())
  const port = (busy.address() as { port: number }).port
  const { failed } = await doctor(t, 'router', { 'router.host': '127.0.0.1', 'router.port': port })
  t.match(failed, [{ check: 'listen', message: `127.0.0.1:${port} is in use`, fix: /router\.port/ }])
})

t.test('a data dir that cannot be created or written fails, naming the setting', async t => {
  const blocker = join(base(t), 'a-file')
  writeFileSync(blocker, '')
  const { failed } = await doctor(t, 'shard', { 'origin.dataDir': join(blocker, 'shard') })
  t.match(failed, [{ check: 'data-dir', message: /^origin.dataDir .*a-file\/shard (does not exist and cannot be created|cannot be read): ENOTDIR/, fix: /origin.dataDir/ }])
  if (process.getuid?.() !== 0) {
    const ro = join(base(t), 'ro')
    mkdirSync(ro)
    chmodSync(ro, 0o500)
    const { failed } = await doctor(t, 'edge', { 'edge.dataDir': ro })
    t.match(failed, [{ check: 'data-dir', message: /not writable: EACCES/ }])
  }
})

t.test('too little disk for the edge\'s tier or the shard\'s reserve fails, naming the setting', async t => {
  const edge = await doctor(t, 'edge', { 'edge.diskBytes': 2 ** 50 })
  t.match(edge.failed, [{ check: 'disk-space', message: /^edge.diskBytes: .* free on the filesystem of .*, 1024 TiB needed/, fix: /lower edge.diskBytes/ }])
  const shard = await doctor(t, 'shard', { 'origin.reserveBytes': 2 ** 50 })
  t.match(shard.failed, [{ check: 'disk-space', message: /origin.reserveBytes: .*the shard refuses every write \(507\)/ }])
})

t.test('an open-file limit below what the config needs fails, with the sum and the unit setting', async t => {
  const { failed } = await doctor(t, 'edge', {}, { fdLimit: 1024 })
  t.match(failed, [{ check: 'open-files', message: /^the open-file limit is 1024, the config needs about 21248 \(http.maxConnections 20000 \+ edge.openFiles 1024/, fix: /LimitNOFILE=65536/ }])
})

t.test('ingest: a missing ffmpeg and a missing admin token fail', async t => {
  const { failed } = await doctor(t, 'ingest', { 'ingest.ffmpeg': '/nonexistent/ffmpeg', 'router.tokenFile': '' })
  t.match(failed, [
    { check: 'secret', message: /router.tokenFile is empty and REELCDN_ROUTER_TOKEN is not set: the router refuses an ingest/ },
    { check: 'ffmpeg', message: 'ingest.ffmpeg is /nonexistent/ffmpeg, which is not an executable file' },
  ])
})

t.test('secret files: open to others, missing, empty or malformed fail; the environment wins', async t => {
  const p = await prepared(t, 'router')
  chmodSync(join(p.dir, 'secrets', 'admin-token'), 0o644)
  writeFileSync(join(p.dir, 'secrets', 'read-token'), '', { mode: 0o600 })
  writeFileSync(join(p.dir, 'secrets', 'token-keys'), 'no-colon-here', { mode: 0o600 })
  const tree = JSON.parse(readFileSync(p.file, 'utf8')) as Record<string, never>
  setPath(tree, 'router.edgeTokenFile', join(p.dir, 'secrets', 'missing') as never)
  writeFileSync(p.file, JSON.stringify(tree))
  const r = await runDoctor('router', { file: p.file, env: {}, offline: true, fdLimit: 65536, clock: GOOD_CLOCK })
  t.match(r.findings.filter(f => f.status === 'fail'), [
    { check: 'secret', message: /router.tokenFile: .*admin-token has mode 0644/, fix: /^chmod 600 .*admin-token$/ },
    { check: 'secret', message: /router.readTokenFile .*read-token is empty/ },
    { check: 'secret', message: /router.edgeTokenFile .*missing cannot be read: ENOENT/, fix: /^create / },
    { check: 'secret', message: /router.tokenKeysFile .*token-keys does not hold token keys/ },
  ])
  const env = await runDoctor('router', { file: p.file, env: { REELCDN_ROUTER_TOKEN: 'x', REELCDN_ROUTER_READ_TOKEN: 'y', REELCDN_EDGE_TOKEN: 'z', REELCDN_TOKEN_KEYS: 'k:0123456789abcdef0123456789abcdef' },
    offline: true, fdLimit: 65536, clock: GOOD_CLOCK })
  t.same(env.findings.filter(f => f.status === 'fail'), [], 'set in the environment, the files are not read (as the services do)')
  const none = await doctor(t, 'shard', { 'origin.tokenFile': '' })
  t.match(none.r.findings.find(f => f.check === 'secret'), { status: 'warn', message: /writes and deletes are refused/ }, 'an optional secret missing is a warning')
})

t.test('TLS: a certificate near its end warns, an expired one fails', async t => {
  const { cert, key } = selfSigned(base(t))
  chmodSync(key, 0o600)
  // judged now, after the certificate was made (GOOD_CLOCK is from before it)
  const soon = await doctor(t, 'edge', { 'http.tlsCertFile': cert, 'http.tlsKeyFile': key }, { clock: { ...GOOD_CLOCK, now: Date.now() } })
  t.match(soon.r.findings.find(f => f.check === 'tls'), { status: 'warn', message: /expires in (0\.\d|1\.0) days/ })
  const late = await doctor(t, 'edge', { 'http.tlsCertFile': cert, 'http.tlsKeyFile': key }, { clock: { ...GOOD_CLOCK, now: Date.now() + 3 * 86_400_000 } })
  t.match(late.failed, [{ check: 'tls', message: /expired on/ }])
})

t.test('the clock: before the build fails, not synchronised warns, a peer\'s skew beyond half a grant fails', async t => {
  const before = await doctor(t, 'shard', {}, { clock: { now: Date.UTC(2001, 0, 1), builtAt: Date.now(), synced: 'yes' } })
  t.match(before.failed, [{ check: 'clock', message: /^the clock says 2001-01-01T00:00:00.000Z, before this install was built/, fix: /NTP/ }])
  const drift = await doctor(t, 'shard', {}, { clock: { ...GOOD_CLOCK, synced: 'no' } })
  t.match(drift.r.findings.filter(f => f.status === 'warn' && f.check === 'clock'), [{ message: /not synchronised by NTP/ }])

  let offsetMs = 120_000
  let status = 200
  const peer = createServer((_q, res) => res.writeHead(status, { date: new Date(Date.now() + offsetMs).toUTCString() }).end(status === 200 ? '{"status":"alive"}' : ''))
  await new Promise<void>(r => peer.listen(0, '127.0.0.1', r))
  t.teardown(() => peer.close())
  const upstream = `http://127.0.0.1:${(peer.address() as { port: number }).port}`
  const p = await prepared(t, 'edge', { 'edge.upstream': upstream })
  const skewed = await runDoctor('edge', { file: p.file, env: {}, fdLimit: 65536, clock: GOOD_CLOCK })
  t.match(skewed.findings.filter(f => f.status === 'fail'), [{ check: 'clock', message: /^the router \(edge.upstream\)'s clock is \+1(19|20|21)\.\d s from this one's/ }])
  offsetMs = 0
  const fine = await runDoctor('edge', { file: p.file, env: {}, fdLimit: 65536, clock: GOOD_CLOCK })
  t.match(fine.findings.filter(f => f.check === 'clock').at(-1), { status: 'ok', message: /differs from this one's by [+-][01]\.\d s/ })
  status = 404
  const other = await runDoctor('edge', { file: p.file, env: {}, fdLimit: 65536, clock: GOOD_CLOCK })
  t.match(other.findings.filter(f => f.check === 'clock').at(-1), { status: 'skip', message: /answered 404, not as a reelcdn service: skew unknown/ },
    'something else answering at the address (a proxy) tells nothing')
})

/** this process's environment without tap's NODE_OPTIONS (its hooks slow every start) nor REELCDN_* settings */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REELCDN_') && k !== 'NODE_OPTIONS'))
}

function cli(args: string[], shell?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, argv] = shell ? ['sh', ['-c', `${shell} && exec "$0" "$@"`, process.execPath, CLI, ...args]] : [process.execPath, [CLI, ...args]]
  return new Promise(resolve => execFile(cmd, argv as string[], { timeout: 60_000, env: childEnv() }, (err, stdout, stderr) =>
    resolve({ code: err ? (err as { code?: number }).code ?? -1 : 0, stdout, stderr })))
}

t.test('the CLI: exit codes as --help documents them, and the limit this process really has', async t => {
  const help = await cli(['doctor', '--help'])
  t.equal(help.code, 0)
  for (const code of ['0 ', '1 ', '2 ', '78 ']) t.match(help.stdout, new RegExp(`^  ${code}`, 'm'), `--help documents exit ${code.trim()}`)
  t.equal((await cli(['doctor', 'cache'])).code, 2, 'an unknown role: 2')

  // exit 0 is exitCode() of a passing report (above); the CLI's output and the other codes here
  const good = await prepared(t, 'shard')
  const bad = await prepared(t, 'shard', { 'origin.port': 'seven' })
  const invalid = await cli(['doctor', 'shard', '-c', bad.file, '--offline'])
  t.equal(invalid.code, 78, 'an invalid config: 78')
  t.match(invalid.stdout, /^reelcdn doctor shard \(config .*shard.json\)$/m)
  t.match(invalid.stdout, /FAIL {2}config[\s\S]*origin\.port/)

  const limited = await cli(['doctor', 'shard', '-c', good.file, '--offline', '--json'], 'ulimit -n 512')
  t.equal(limited.code, 1, 'a check failed: 1')
  const report = JSON.parse(limited.stdout) as { role: string; findings: Finding[] }
  t.equal(report.role, 'shard')
  t.match(report.findings.find(f => f.check === 'open-files'), { status: 'fail', message: /^the open-file limit is 512, the config needs about 8064/ })
})
