import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { cpus, totalmem } from 'node:os'
import { access, readFile } from 'node:fs/promises'
import { constants as fsc } from 'node:fs'
import { aptInstall } from '../../lib/apt.js'
import { hugeMallocEnv } from '../../lib/malloc-tunables.js'

/**
 * External programs the bench drives, installed with apt when missing so
 * `make bench` works on a fresh Debian/Ubuntu machine, and the machine line
 * printed with every result.
 */
const exec = promisify(execFile)

async function which(cmd: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = `${dir}/${cmd}`
    try {
      await access(p, fsc.X_OK)
      return p
    } catch { /* not here */ }
  }
  return undefined
}

/**
 * Returns the path of each command, installing its package with apt-get if it
 * is missing (`apt-get update` first only if the plain install fails).
 */
export async function ensureTools(need: Record<string, string>, log: (s: string) => void): Promise<Record<string, string>> {
  const missing = []
  for (const cmd of Object.keys(need)) if (!(await which(cmd))) missing.push(cmd)
  if (missing.length) {
    const pkgs = missing.map(c => need[c]!)
    if (!(await which('apt-get'))) throw new Error(`the bench needs ${pkgs.join(', ')} and cannot install them without apt-get; install them and run again`)
    await aptInstall(pkgs, { log, noServiceStarts: true, noRecommends: true })
  }
  const out: Record<string, string> = {}
  for (const cmd of Object.keys(need)) {
    const p = await which(cmd)
    if (!p) throw new Error(`${cmd} is still missing after installing ${need[cmd]}`)
    out[cmd] = p
  }
  return out
}

export interface Machine {
  cpu: string
  cores: number
  ramGiB: number
  kernel: string
  node: string
  nginx: string
  wrk: string
  loadavg: string
}

export async function machine(tools: Record<string, string>): Promise<Machine> {
  const version = async (cmd: string, args: string[], re: RegExp) => {
    try {
      const { stdout, stderr } = await exec(cmd, args).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '' }))
      return re.exec(stdout + stderr)?.[1] ?? 'unknown'
    } catch { return 'unknown' }
  }
  const kernel = (await readFile('/proc/sys/kernel/osrelease', 'utf8').catch(() => 'unknown')).trim()
  const loadavg = (await readFile('/proc/loadavg', 'utf8').catch(() => '')).split(' ').slice(0, 3).join(' ')
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    ramGiB: Math.round(totalmem() / 1024 ** 3 * 10) / 10,
    kernel,
    node: process.version,
    nginx: tools.nginx ? await version(tools.nginx, ['-v'], /nginx\/(\S+)/) : 'n/a',
    wrk: tools.wrk ? await version(tools.wrk, ['-v'], /wrk (\S+)/) : 'n/a',
    loadavg,
  }
}

export function machineLine(m: Machine): string {
  // reelcdn's processes run as deployed, with huge pages for malloc (bench/lib/reelcdn.ts, lib/malloc-tunables.ts)
  return `${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}, nginx ${m.nginx}, wrk ${m.wrk}, ` +
    `reelcdn GLIBC_TUNABLES=${hugeMallocEnv(process.env).GLIBC_TUNABLES}`
}

/** Clock ticks per second for /proc CPU times. */
export async function clockTicks(): Promise<number> {
  try {
    const { stdout } = await exec('getconf', ['CLK_TCK'])
    const n = Number(stdout.trim())
    return n > 0 ? n : 100
  } catch { return 100 }
}
