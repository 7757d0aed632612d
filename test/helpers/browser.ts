import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import { aptInstall } from '../../lib/apt.js'

/**
 * Headless Chromium from Debian, installed on first use when missing (the test
 * machine reaches Debian's mirrors, not browser downloads). Started with the
 * flags that keep it off the network: this machine has none beyond loopback.
 */
export const CHROMIUM = '/usr/bin/chromium'

export async function ensureChromium(): Promise<void> {
  if (existsSync(CHROMIUM)) return
  await aptInstall(['chromium'])
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is missing`)
}

export async function launch(): Promise<Browser> {
  await ensureChromium()
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  })
}
