import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { aptInstall } from '../../lib/apt.js'

/**
 * ffmpeg for the real-player test. The test setup installs it with apt when it
 * is missing (as root, or with passwordless sudo); if that is impossible the
 * test fails with the reason rather than silently skipping.
 */
const run = promisify(execFile)

export async function ensureFfmpeg(): Promise<string> {
  const found = ['/usr/bin/ffmpeg', '/usr/local/bin/ffmpeg'].find(p => existsSync(p))
  if (found) return found
  try {
    await aptInstall(['ffmpeg'])
  } catch (err) {
    throw new Error(`ffmpeg is missing and could not be installed: ${(err as Error).message}`)
  }
  if (!existsSync('/usr/bin/ffmpeg')) throw new Error('apt-get installed ffmpeg but /usr/bin/ffmpeg is missing')
  return '/usr/bin/ffmpeg'
}

/** Runs ffmpeg quietly; resolves with stdout, rejects with its stderr on a non-zero exit. */
export async function ffmpeg(bin: string, args: string[], timeoutMs = 60000): Promise<string> {
  const { stdout } = await run(bin, ['-hide_banner', '-nostdin', '-v', 'error', ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 ** 2 })
  return stdout
}
