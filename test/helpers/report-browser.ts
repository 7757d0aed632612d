import { pathToFileURL } from 'node:url'
import { launch } from './browser.js'

/**
 * Opens a load test report (a file) in headless Chromium with the network
 * off, and says what rendered: for each chart, its line points and drawn bars;
 * every request the page made other than the file itself; console errors,
 * warnings and page errors.
 */
export interface ChartSeen {
  label: string | null
  width: number
  /** points of each polyline */
  lines: number[]
  /** bars with a height above zero */
  bars: number
}

export interface ReportSeen {
  charts: ChartSeen[]
  requests: string[]
  problems: string[]
  text: string
}

export async function openReport(file: string): Promise<ReportSeen> {
  const browser = await launch()
  try {
    const ctx = await browser.newContext({ offline: true })
    const page = await ctx.newPage()
    const href = pathToFileURL(file).href
    const requests: string[] = []
    const problems: string[] = []
    page.on('request', r => { if (r.url() !== href) requests.push(r.url()) })
    page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()) })
    page.on('pageerror', e => problems.push(e.message))
    await page.goto(href, { waitUntil: 'load' })
    const charts = await page.$$eval('svg', svgs => svgs.map(s => ({
      label: s.getAttribute('aria-label'),
      width: s.getBoundingClientRect().width,
      lines: [...s.querySelectorAll('polyline')].map(p => (p.getAttribute('points') ?? '').trim().split(/\s+/).filter(Boolean).length),
      bars: [...s.querySelectorAll('rect')].filter(r => r.getBoundingClientRect().height > 0).length,
    })))
    return { charts, requests, problems, text: (await page.textContent('body')) ?? '' }
  } finally {
    await browser.close()
  }
}
