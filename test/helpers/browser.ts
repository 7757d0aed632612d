import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

/**
 * Headless Chromium from Debian, installed on first use when missing (the test
 * machine reaches Debian's mirrors, not browser downloads). Started with the
 * flags that keep it off the network: this machine has none beyond loopback.
 */
export const CHROMIUM = '/usr/bin/chromium'

export function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  try {
    execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'ignore', env, timeout: 600_000 })
  } catch {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 })
    execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'ignore', env, timeout: 600_000 })
  }
}

export async function launch(): Promise<Browser> {
  ensureChromium()
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  })
}
