import type { Browser, Page } from 'playwright-core'

/**
 * The status console (lib/console/page.ts) in a browser, for tests: open a
 * service's page, type the admin token into its form, wait for the figures,
 * and read them back from their data- attributes (raw values, not the text).
 * Page-side code goes in as strings: this project compiles without DOM types.
 */
export async function openConsole(browser: Browser, url: string, token: string, viewport = { width: 1100, height: 1400 }): Promise<Page> {
  const page = await browser.newPage({ viewport })
  const errors: string[] = []
  const answers: string[] = []
  page.on('pageerror', e => errors.push(e.message))
  page.on('response', r => { if (r.url().endsWith('/status.json')) answers.push(String(r.status())) })
  await page.goto(`${url}/status`)
  await page.waitForSelector('#login')
  await page.fill('#login input[name=token]', token)
  await page.click('#login button')
  await page.waitForSelector('body[data-at]', { timeout: 15_000 }).catch(async err => {
    throw new Error(`${(err as Error).message}; /status.json answered ${answers.join(', ') || 'nothing'}; the page says ${await page.textContent('main')}; errors: ${errors.join('; ')}`)
  })
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`)
  return page
}

/** Reloads the figures (the page's own refresh, now) and waits for the new draw. */
export async function refresh(page: Page): Promise<void> {
  const before = await page.getAttribute('body', 'data-at')
  await page.evaluate('load()')
  await page.waitForFunction(`document.body.dataset.at !== ${JSON.stringify(before)}`)
}

/** A figure's raw value (`data-figure="<section>.<key>"`). */
export async function figure(page: Page, key: string): Promise<unknown> {
  const v = await page.getAttribute(`[data-figure="${key}"]`, 'data-value')
  if (v === null) throw new Error(`no figure ${key} on the page`)
  return JSON.parse(v)
}

/** A table cell's raw value (`data-cell="<table>.<row>.<column>"`). */
export async function cell(page: Page, table: string, row: number, column: string): Promise<unknown> {
  const v = await page.getAttribute(`[data-cell="${table}.${row}.${column}"]`, 'data-value')
  if (v === null) throw new Error(`no cell ${table}.${row}.${column} on the page`)
  return JSON.parse(v)
}

/** Whether the page fits its viewport's width (nothing scrolls sideways but the tables' own boxes). */
export function fitsWidth(page: Page): Promise<boolean> {
  return page.evaluate('document.documentElement.scrollWidth <= window.innerWidth') as Promise<boolean>
}
