import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { program } from '../../program.js'
import { loadConfig } from '../../lib/config/config.js'
import { runDoctor } from '../../tools/doctor/doctor.js'
import { EXIT } from '../../tools/doctor/main.js'
import { DEPLOY, samplePath, type Role } from '../helpers/deploy.js'

/**
 * The systemd units and the Containerfile under deploy/ cannot be run here
 * (no systemd as PID 1, no container engine), so this checks what can go
 * wrong in them without one: each starts a subcommand that exists with
 * options it takes, reads the sample config for its role from where the
 * install puts it, writes only where that config keeps its data, allows the
 * file descriptors `reelcdn doctor` says the config needs, and (the units)
 * passes `systemd-analyze verify` with nothing to say, when it is installed.
 */
const read = (p: string) => readFileSync(join(DEPLOY, p), 'utf8')

/** `Key=value` lines of a unit, every value of each key. */
function unit(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (kv) m.set(kv[1]!, [...(m.get(kv[1]!) ?? []), kv[2]!])
  }
  return m
}

/** The subcommand and its options exist: `reelcdn <sub> --config FILE` parses. */
function checkCommand(t: Test, argv: string[], where: string) {
  const [sub, ...rest] = argv
  const cmd = program().commands.find(c => c.name() === sub)
  t.ok(cmd, `${where}: reelcdn ${sub} exists`)
  for (const a of rest.filter(a => a.startsWith('-')))
    t.ok(cmd?.options.some(o => o.long === a || o.short === a), `${where}: reelcdn ${sub} takes ${a}`)
}

const UNITS: { file: string; role: Role; instance?: string }[] = [
  { file: 'reelcdn-shard@.service', role: 'shard', instance: '1' },
  { file: 'reelcdn-router.service', role: 'router' },
  { file: 'reelcdn-edge.service', role: 'edge' },
]
const dataDir = (role: Role) => {
  const c = loadConfig({ file: samplePath(role), env: {} })
  return role === 'shard' ? c.origin.dataDir : role === 'router' ? c.router.dataDir : c.edge.dataDir
}
const port = (role: Role) => {
  const c = loadConfig({ file: samplePath(role), env: {} })
  return role === 'shard' ? c.origin.port : role === 'router' ? c.router.port : c.edge.port
}

t.test('each unit runs its role from the sample config, hardened, writing only its data dir', async t => {
  const sysusers = read('systemd/reelcdn.sysusers.conf')
  for (const u of UNITS) {
    const text = read(`systemd/${u.file}`).replaceAll('%i', u.instance ?? '')
    const k = unit(text)
    const exec = k.get('ExecStart')![0]!.split(' ')
    t.same(exec.slice(0, 2), ['/usr/bin/node', '/opt/reelcdn/dist/cli.js'], `${u.file}: the installed CLI`)
    checkCommand(t, exec.slice(2), u.file)
    const config = exec[exec.indexOf('--config') + 1]!
    t.equal(config, `/etc/reelcdn/${u.role}${u.instance ? `-${u.instance}` : ''}.json`, `${u.file}: reads /etc/reelcdn/<role>.json`)
    t.match(text, `deploy/config/${u.role}.json`, `${u.file}: says which sample that is`)
    t.same(k.get('ReadWritePaths'), [dataDir(u.role)], `${u.file}: writes only the sample's data dir`)
    t.same(k.get('StateDirectory')!.map(s => `/var/lib/${s}`), [dataDir(u.role)], `${u.file}: systemd makes that dir for the user`)
    t.same(k.get('User'), ['reelcdn'])
    t.match(sysusers, /^u reelcdn /m, 'the user the units run as is made by sysusers.d')
    for (const [key, value] of [['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['PrivateDevices', 'yes'],
      ['NoNewPrivileges', 'yes'], ['CapabilityBoundingSet', ''], ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'], ['SystemCallFilter', '@system-service']])
      t.same(k.get(key), [value], `${u.file}: ${key}=${value}`)
    t.same(k.get('RestartPreventExitStatus'), [String(EXIT.config)], `${u.file}: a bad config (exit ${EXIT.config}) is not restarted in a loop`)
    const limit = Number(k.get('LimitNOFILE')![0])
    const doc = await runDoctor(u.role, { file: samplePath(u.role), env: {}, offline: true, fdLimit: limit,
      clock: { now: Date.now(), builtAt: undefined, synced: 'yes' } })
    t.match(doc.findings.find(f => f.check === 'open-files'), { status: 'ok' }, `${u.file}: LimitNOFILE=${limit} covers what doctor says the sample needs`)
  }
})

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise(resolve => execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) =>
    resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, out: `${stdout}${stderr}` })))
}

t.test('systemd-analyze verify has nothing to say about the units, and sysusers.d makes the user', async t => {
  if (!existsSync('/usr/bin/systemd-analyze')) return void t.comment('no systemd-analyze here: not verified')
  const dir = t.testdir()
  // a template is verified as an instance of it
  const files = UNITS.map(u => {
    const to = join(dir, u.instance ? u.file.replace('@.', `@${u.instance}.`) : u.file)
    copyFileSync(join(DEPLOY, 'systemd', u.file), to)
    return to
  })
  const v = await run('systemd-analyze', ['verify', '--man=no', ...files])
  t.equal(v.code, 0)
  // a bad line is only a warning to verify, and it still exits 0: the test is that it said nothing
  t.equal(v.out.trim(), '', 'no warning')
  if (!existsSync('/usr/bin/systemd-sysusers')) return
  mkdirSync(join(dir, 'root', 'etc'), { recursive: true })
  const s = await run('systemd-sysusers', [`--root=${join(dir, 'root')}`, join(DEPLOY, 'systemd', 'reelcdn.sysusers.conf')])
  t.equal(s.code, 0, s.out)
  t.match(readFileSync(join(dir, 'root', 'etc', 'passwd'), 'utf8'), /^reelcdn:x:\d+:\d+:reelcdn video CDN:\/var\/lib\/reelcdn:\/usr\/sbin\/nologin$/m)
})

/** The Containerfile's stages: name, and its instructions as [keyword, rest] with continuations joined. */
function stages(text: string): Map<string, [string, string][]> {
  const out = new Map<string, [string, string][]>()
  let cur: [string, string][] = []
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line)
    if (!m) continue
    if (m[1] === 'FROM') out.set(/ AS (\S+)$/.exec(m[2]!)![1]!, cur = [])
    cur.push([m[1]!, m[2]!])
  }
  return out
}

t.test('the Containerfile: a target per role, each from the sample config, as an unprivileged user', async t => {
  const text = read('container/Containerfile')
  const s = stages(text)
  t.same([...s.keys()], ['build', 'runtime', 'shard', 'router', 'ingest', 'edge'])
  const runtime = s.get('runtime')!
  const get = (st: [string, string][], k: string) => st.filter(([kw]) => kw === k).map(([, v]) => v)
  t.same(get(runtime, 'USER'), ['reelcdn'])
  t.same(get(runtime, 'ENTRYPOINT'), ['["node", "/opt/reelcdn/dist/cli.js"]'], 'the same CLI the units run')
  for (const need of ['/src/config config', '/src/dist dist', '/src/node_modules node_modules'])
    t.ok(get(runtime, 'COPY').some(c => c.endsWith(need)), `the image has ${need.split(' ')[1]} (config/default.json is read at run time)`)
  // what the build copies from the repository exists
  for (const [, st] of s) for (const c of get(st, 'COPY').filter(c => !c.startsWith('--from'))) {
    const src = c.split(/\s+/).slice(0, -1)
    for (const p of src) if (p !== '.') t.ok(existsSync(join(DEPLOY, '..', p)), `COPY ${p} exists`)
  }
  for (const [target, role, sub] of [['shard', 'shard', 'origin'], ['router', 'router', 'router'], ['edge', 'edge', 'edge']] as const) {
    const st = s.get(target)!
    const cmd = JSON.parse(get(st, 'CMD')[0]!) as string[]
    t.equal(cmd[0], sub)
    checkCommand(t, cmd, `target ${target}`)
    const config = cmd[cmd.indexOf('--config') + 1]
    t.same(get(st, 'COPY'), [`deploy/config/${role}.json ${config}`], `${target}: the sample is where CMD reads it`)
    t.same(get(st, 'VOLUME'), [dataDir(role)], `${target}: the sample's data dir is the volume`)
    t.match(get(runtime, 'RUN').join(' '), dataDir(role), `${target}: and the image makes it for reelcdn`)
    t.same(get(st, 'EXPOSE'), [String(port(role))], `${target}: exposes the sample's port`)
    t.match(get(st, 'HEALTHCHECK')[0], `http://127.0.0.1:${port(role)}/readyz`, `${target}: checks /readyz on it`)
  }
  t.match(get(s.get('ingest')!, 'RUN').join(' '), /apt-get install .*ffmpeg/, 'the ingest image has ffmpeg')
  const build = get(s.get('build')!, 'RUN').join(' ')
  t.match(build, /apt-get install .*\bgcc\b/, 'the build stage has a C compiler')
  t.match(build, /make native NATIVE_REQUIRED=1/, 'and builds native/ (CRC32C, zero-copy sends), failing without it rather than shipping the fallbacks')
  t.ok(existsSync(join(DEPLOY, 'container', 'Containerfile.dockerignore')), 'the build context leaves out node_modules and dist')
})

t.test('logrotate signals what the services reopen their log file on', async t => {
  const text = read('logrotate/reelcdn')
  t.match(text, /postrotate\s+systemctl kill --signal=SIGUSR1 --kill-whom=main 'reelcdn-\*\.service'/)
  t.notMatch(text, /^\s*copytruncate/m, 'no copytruncate (which loses the lines written between the copy and the truncate)')
  t.match(read('systemd/reelcdn-edge.service'), /^LogsDirectory=reelcdn$/m, 'the units make /var/log/reelcdn')
  t.same(readdirSync(join(DEPLOY, 'config')).sort(), ['edge.json', 'router.json', 'shard.json'])
})
