import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { WATCH_SCRIPT } from './page.js'

/**
 * The watch page's scripts, served by the router and the edge at
 * `/assets/{name}` from the project's own dependencies (hls.js, dash.js) and
 * lib/watch/page.ts: a page that plays video never loads code from a
 * third-party CDN. Each asset is read once, on first request, and served with
 * a strong ETag (its SHA-256) and an hour's caching.
 */
export interface Asset {
  body: Buffer
  etag: string
  contentType: string
}

const require = createRequire(import.meta.url)

const SOURCES: Record<string, () => Buffer> = {
  'hls.min.js': () => readFileSync(require.resolve('hls.js/dist/hls.min.js')),
  // dashjs's 'require' export is its UMD build, the one that sets window.dashjs
  'dash.all.min.js': () => readFileSync(require.resolve('dashjs')),
  'watch.js': () => Buffer.from(WATCH_SCRIPT),
}

const loaded = new Map<string, Asset>()

/** The asset called `name`, or undefined for a name that is not one. */
export function asset(name: string): Asset | undefined {
  const have = loaded.get(name)
  if (have) return have
  const source = Object.hasOwn(SOURCES, name) ? SOURCES[name] : undefined
  if (!source) return undefined
  const body = source()
  const a = { body, etag: `"${createHash('sha256').update(body).digest('hex')}"`, contentType: 'text/javascript; charset=utf-8' }
  loaded.set(name, a)
  return a
}

export const ASSET_NAMES = Object.keys(SOURCES)

/** The watch page's Content-Security-Policy: its own scripts, media and API calls wherever /v1/play points. */
export const WATCH_CSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; media-src 'self' blob: http: https:; connect-src 'self' http: https:; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
