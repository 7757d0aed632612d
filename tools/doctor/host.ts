import { execFile } from 'node:child_process'
import { constants as fsc } from 'node:fs'
import { access, readFile, stat } from 'node:fs/promises'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { fail, ok, reason, skip, warn, type Finding } from './finding.js'
import { hasHugeMalloc } from '../../lib/malloc-tunables.js'

/**
 * What the machine must give a role besides its directories: its port, file
 * descriptors, ffmpeg for an ingest that transcodes, and a sane clock.
 */
const run = promisify(execFile)

/** Binds host:port and lets go at once: what the service will do at start. */
export async function checkListen(setting: string, host: string, port: number): Promise<Finding> {
  const check = 'listen'
  if (port === 0) return ok(check, `${setting} is 0: the service picks a free port at start`)
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`
  const err = await new Promise<NodeJS.ErrnoException | undefined>(resolve => {
    const s = createServer()
    s.once('error', e => resolve(e))
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(undefined)))
  })
  if (!err) return ok(check, `${where} is free to listen on`)
  switch (err.code) {
    case 'EADDRINUSE':
      return fail(check, `${where} is in use`, `stop what listens there (ss -ltnp 'sport = :${port}'; if it is this service already running, that is expected), or set ${setting}`)
    case 'EACCES':
      return fail(check, `${where}: a port below 1024 needs a privilege this user lacks`,
        `uncomment AmbientCapabilities=CAP_NET_BIND_SERVICE in the unit (deploy/systemd), or use a port of 1024 or more`)
    case 'EADDRNOTAVAIL':
      return fail(check, `${where}: ${host} is not an address of this machine`, `set the listening address (${setting.replace(/port$/, 'host')}) to one of this machine's, or 0.0.0.0`)
    default:
      return fail(check, `${where} cannot be listened on: ${reason(err)}`, `fix ${setting}`)
  }
}

/** The hard open-file limit (Node raises its soft limit to it at start), from /proc/self/limits; undefined if unknown. */
export async function openFileLimit(): Promise<number | undefined> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '')
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text)
  if (!m) return undefined
  return m[2] === 'unlimited' ? Infinity : Number(m[2])
}

/** What the config needs, as a sum of its parts, each named so the operator sees what to lower. */
export interface FdNeed { total: number; parts: string }

export function checkOpenFiles(need: FdNeed, limit: number | undefined): Finding {
  const check = 'open-files'
  if (limit === undefined) return skip(check, `cannot read this process's open-file limit (no /proc/self/limits); the config needs about ${need.total}`)
  if (limit < need.total)
    return fail(check, `the open-file limit is ${limit}, the config needs about ${need.total} (${need.parts})`,
      `raise it: LimitNOFILE=65536 in the unit (deploy/systemd has it), --ulimit nofile=65536 for a container, or ulimit -n; or lower http.maxConnections`)
  return ok(check, `the open-file limit is ${limit === Infinity ? 'unlimited' : limit}, the config needs about ${need.total} (${need.parts})`)
}

async function executable(p: string): Promise<boolean> {
  return access(p, fsc.X_OK).then(() => true, () => false)
}

/** ffmpeg and ffprobe as `reelcdn ingest --renditions` finds them (router/ingest/transcode/tools.ts), without installing anything. */
export async function checkFfmpeg(configured: string): Promise<Finding> {
  const check = 'ffmpeg'
  const ffmpeg = configured || '/usr/bin/ffmpeg'
  if (!(await executable(ffmpeg))) {
    return configured
      ? fail(check, `ingest.ffmpeg is ${configured}, which is not an executable file`, 'set ingest.ffmpeg to the ffmpeg binary, or empty for /usr/bin/ffmpeg')
      : fail(check, 'no ffmpeg at /usr/bin/ffmpeg: ingest --renditions transcodes with it (and would try apt-get, which needs root)',
        'apt-get install ffmpeg, or set ingest.ffmpeg to its path')
  }
  const ffprobe = join(dirname(ffmpeg), 'ffprobe')
  if (!(await executable(ffprobe))) return fail(check, `no ffprobe next to ${ffmpeg}`, `install ffprobe beside it (${ffprobe}); Debian's ffmpeg package has both`)
  let encoders: string
  try {
    encoders = (await run(ffmpeg, ['-hide_banner', '-encoders'], { maxBuffer: 4 * 1024 * 1024, timeout: 20_000 })).stdout
  } catch (err) {
    return fail(check, `${ffmpeg} does not run: ${(err as Error).message.split('\n')[0]}`, 'reinstall ffmpeg')
  }
  const missing = ['libx264', 'aac'].filter(enc => !new RegExp(`^\\s*\\S+\\s+${enc}\\s`, 'm').test(encoders))
  if (missing.length) return fail(check, `${ffmpeg} has no ${missing.join(' or ')} encoder`, 'use a build with them (Debian\'s has)')
  return ok(check, `${ffmpeg} and ffprobe run, with libx264 and aac`)
}

export interface ClockProbe {
  now: number
  /** when this install was built: a clock before it is wrong */
  builtAt: number | undefined
  /** `timedatectl show -p NTPSynchronized --value`: yes, no, or undefined when it cannot tell */
  synced: 'yes' | 'no' | undefined
}

export async function probeClock(builtFile: string): Promise<ClockProbe> {
  const builtAt = await stat(builtFile).then(s => s.mtimeMs, () => undefined)
  const synced = await run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 5000 })
    .then(r => (r.stdout.trim() === 'yes' ? 'yes' as const : r.stdout.trim() === 'no' ? 'no' as const : undefined), () => undefined)
  return { now: Date.now(), builtAt, synced }
}

/**
 * Offline: the clock is not before this install was built, and systemd says whether NTP synchronised it (play
 * tokens, fill grants and viewer credentials carry expiry times another machine checks).
 */
export function checkClock(p: ClockProbe): Finding[] {
  const check = 'clock'
  const out: Finding[] = []
  const now = new Date(p.now).toISOString()
  if (p.builtAt !== undefined && p.now < p.builtAt - 86_400_000)
    out.push(fail(check, `the clock says ${now}, before this install was built (${new Date(p.builtAt).toISOString()})`, 'set the clock (enable NTP: systemd-timesyncd or chrony)'))
  else out.push(ok(check, `the clock says ${now} (time zone ${Intl.DateTimeFormat().resolvedOptions().timeZone}; edge.prefill.window is in it)`))
  if (p.synced === 'yes') out.push(ok(check, 'NTP has synchronised the clock (timedatectl)'))
  else if (p.synced === 'no') out.push(warn(check, 'the clock is not synchronised by NTP (timedatectl): play tokens and fill grants expire by the clocks of other machines',
    'enable NTP: timedatectl set-ntp true, or chrony'))
  else out.push(skip(check, 'cannot tell whether NTP synchronises the clock (no timedatectl, or systemd is not running): check it yourself'))
  return out
}

/** Skew from a peer's Date header (1 s resolution), measured at the request's midpoint; beyond a grant's lifetime, grants fail. */
export async function checkSkew(peer: string, url: string, graceMs: number): Promise<Finding> {
  const check = 'clock'
  const sent = Date.now()
  let date: string | null
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) })
    // a reelcdn service's /healthz, not whatever else answers at that address (a proxy's 404)
    const alive = res.ok && ((await res.json().catch(() => ({}))) as { status?: unknown }).status === 'alive'
    if (!alive) return skip(check, `${peer} ${url} answered ${res.status}, not as a reelcdn service: skew unknown`)
    date = res.headers.get('date')
  } catch (err) {
    return skip(check, `${peer} ${url} not reachable (${(err as Error).message}): skew unknown`)
  }
  const mid = (sent + Date.now()) / 2
  if (!date) return skip(check, `${peer} ${url} sent no Date header: skew unknown`)
  const skew = Date.parse(date) + 500 - mid
  const s = `${skew >= 0 ? '+' : ''}${(skew / 1000).toFixed(1)} s`
  if (Math.abs(skew) > graceMs) return fail(check, `${peer}'s clock is ${s} from this one's: grants and tokens signed there expire early or late here`, 'synchronise both with NTP')
  if (Math.abs(skew) > 5000) return warn(check, `${peer}'s clock is ${s} from this one's`, 'synchronise both with NTP')
  return ok(check, `${peer}'s clock differs from this one's by ${s}`)
}

/** The kernel's transparent huge page mode (the bracketed word of /sys/kernel/mm/transparent_hugepage/enabled); undefined if unknown. */
export async function thpMode(file = '/sys/kernel/mm/transparent_hugepage/enabled'): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return /\[(\w+)\]/.exec(text)?.[1]
}

/**
 * Huge pages for chunk memory (lib/malloc-tunables.ts): the units, the image
 * and the edge's supervisor set GLIBC_TUNABLES=glibc.malloc.hugetlb=1; it
 * takes effect only if the kernel allows THP. `env`: doctor's own, to say so
 * when reelcdn is started by hand from this shell.
 */
export function checkHugePages(mode: string | undefined, env: NodeJS.ProcessEnv): Finding {
  const check = 'huge-pages'
  if (mode === undefined) return skip(check, 'cannot read /sys/kernel/mm/transparent_hugepage/enabled: chunk memory may fault every 4 KiB page')
  if (mode === 'never')
    return warn(check, 'transparent huge pages are off (never): chunk memory faults every 4 KiB page, and fills run about a third slower',
      'echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (and transparent_hugepage=madvise on the kernel command line)')
  if (!hasHugeMalloc(env))
    return ok(check, `transparent huge pages: ${mode}; the units, the image and \`edge --supervise\` set GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (not set in this shell: set it to start reelcdn by hand)`)
  return ok(check, `transparent huge pages: ${mode}, and GLIBC_TUNABLES asks malloc for them`)
}
