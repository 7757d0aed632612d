import { execFile } from 'node:child_process'
import { access, rm, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'

/**
 * Installs Debian packages for what a test, the bench or `make run` needs
 * (ffmpeg, chromium, nginx, wrk): the machine reaches Debian's mirrors, nothing
 * else. Test files run in parallel and each may need a package, so two
 * installs meet often: both wait for dpkg's lock (`DPkg::Lock::Timeout`) and a
 * lock error from `apt-get update` (which that option does not cover) is
 * retried, rather than one of them failing on "Could not get lock". A plain
 * install is tried first; `apt-get update` runs only if it fails.
 */
const exec = promisify(execFile)
const LOCK_WAIT_S = 900

export interface AptOptions {
  log?: (line: string) => void
  /** Refuse service starts during the install (policy-rc.d exit 101): Debian starts a packaged nginx otherwise. */
  noServiceStarts?: boolean
  /** `--no-install-recommends` (the bench's servers need no extras). */
  noRecommends?: boolean
  timeoutMs?: number
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p)
    return true
  } catch { return false }
}

export async function aptInstall(pkgs: string[], opts: AptOptions = {}): Promise<void> {
  const log = opts.log ?? (() => {})
  const timeout = opts.timeoutMs ?? 1_200_000
  const root = process.getuid?.() === 0
  if (!root && !(await exists('/usr/bin/sudo'))) throw new Error(`${pkgs.join(', ')} missing, and installing needs root or sudo`)
  const apt = async (...args: string[]): Promise<void> => {
    const argv = [...(root ? [] : ['-n', 'apt-get']), '-o', `DPkg::Lock::Timeout=${LOCK_WAIT_S}`, ...args]
    const deadline = Date.now() + LOCK_WAIT_S * 1000
    for (;;) {
      try {
        await exec(root ? 'apt-get' : 'sudo', argv, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout, maxBuffer: 64 * 1024 * 1024 })
        return
      } catch (err) {
        const stderr = String((err as { stderr?: string }).stderr ?? (err as Error).message)
        if (/Could not get lock|Unable to lock/i.test(stderr) && Date.now() < deadline) {
          await new Promise(r => setTimeout(r, 2000))
          continue
        }
        throw new Error(`apt-get ${args.join(' ')} failed: ${stderr.trim().slice(-500)}`, { cause: err })
      }
    }
  }
  log(`installing ${pkgs.join(' ')} with apt-get`)
  const policy = '/usr/sbin/policy-rc.d'
  const ownPolicy = opts.noServiceStarts === true && root && !(await exists(policy))
  if (ownPolicy) await writeFile(policy, '#!/bin/sh\n# written by reelcdn during apt-get install; removed after\nexit 101\n', { mode: 0o755 })
  const install = ['install', '-y', '-qq', ...(opts.noRecommends === true ? ['--no-install-recommends'] : []), ...pkgs]
  try {
    try {
      await apt(...install)
    } catch {
      log('apt-get install failed; running apt-get update and trying again')
      await apt('update', '-qq')
      await apt(...install)
    }
  } finally {
    if (ownPolicy) await rm(policy, { force: true })
  }
}
