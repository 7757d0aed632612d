import { execFile, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'

/**
 * ffmpeg for the real-player test. The test setup installs it with apt when it
 * is missing (as root, or with passwordless sudo); if that is impossible the
 * test fails with the reason rather than silently skipping.
 */
const run = promisify(execFile)

export function ensureFfmpeg(): string {
  const found = ['/usr/bin/ffmpeg', '/usr/local/bin/ffmpeg'].find(p => existsSync(p))
  if (found) return found
  const asRoot = process.getuid?.() === 0
  const cmd = asRoot ? ['apt-get', ['install', '-y', 'ffmpeg']] as const : ['sudo', ['-n', 'apt-get', 'install', '-y', 'ffmpeg']] as const
  const res = spawnSync(cmd[0], [...cmd[1]], { stdio: 'pipe', timeout: 600000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  if (res.status !== 0 || !existsSync('/usr/bin/ffmpeg'))
    throw new Error(`ffmpeg is missing and \`${cmd[0]} ${cmd[1].join(' ')}\` failed: ${res.stderr?.toString().slice(-500) ?? res.error?.message}`)
  return '/usr/bin/ffmpeg'
}

/** Runs ffmpeg quietly; resolves with stdout, rejects with its stderr on a non-zero exit. */
export async function ffmpeg(bin: string, args: string[], timeoutMs = 60000): Promise<string> {
  const { stdout } = await run(bin, ['-hide_banner', '-nostdin', '-v', 'error', ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 ** 2 })
  return stdout
}
