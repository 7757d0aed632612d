import { createHash } from 'node:crypto'
import type { ServerResponse } from 'node:http'

/**
 * The status console's page (docs/console.md): one self-contained HTML
 * document for every service, inline CSS and script, no third-party asset.
 * It holds no data itself, so it is public: the script asks `/status.json`
 * with the admin token as a bearer, which it keeps in the tab's
 * sessionStorage (typed into the form the page shows when it has none or the
 * service refused it), and redraws every `refreshMs`.
 *
 * Rendering is generic over lib/console/status.ts's shape: each figure is an
 * element with `data-figure="<section>.<key>"` and the raw value in
 * `data-value`; each table cell `data-cell="<table>.<row>.<column>"`; each
 * sparkline an <svg data-series="<section>.<key>" data-points="n">. Text goes
 * in with textContent (a title id is never markup). `document.body.dataset.at`
 * is the `at` of the status last drawn: what a test waits for.
 *
 * The Content-Security-Policy allows this one script (by its hash), inline
 * styles, and fetches to this origin: nothing else loads.
 */
const SCRIPT = `
const KEY = 'reelcdn-console-token'
const $ = (t, a = {}, ...kids) => { const e = document.createElement(t); for (const k in a) e.setAttribute(k, a[k]); for (const c of kids) e.append(c); return e }
const KiB = 1024
function bytes(n) { const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0; while (Math.abs(n) >= KiB && i < u.length - 1) { n /= KiB; i++ } return (i ? n.toFixed(1) : String(Math.round(n))) + ' ' + u[i] }
function show(v, unit) {
  if (v === null || v === undefined) return '–'
  if (unit === 'ratio') return (v * 100).toFixed(1) + ' %'
  if (unit === 'bytes') return bytes(v)
  if (unit === 'bytesPerSec') return bytes(v) + '/s'
  if (unit === 'ms') return v < 1000 ? Math.round(v) + ' ms' : (v / 1000).toFixed(1) + ' s'
  if (unit === 'time') return v ? new Date(v).toLocaleTimeString() : '–'
  if (typeof v === 'boolean') return v ? 'yes' : 'no'
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString() : v.toFixed(2)
  return String(v)
}
const GOOD = /^(up|ok|live|yes|idle|running|true)$/, BAD = /^(down|failing|silent|unhealthy|lost|stopped|false)$/
function cls(v, unit) { if (unit !== 'state') return ''; const s = String(v); return GOOD.test(s) ? 'good' : BAD.test(s) ? 'bad' : 'warn' }
function spark(s, key) {
  const W = 300, H = 48, p = s.points
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H); svg.setAttribute('preserveAspectRatio', 'none')
  svg.dataset.series = key; svg.dataset.points = String(p.length)
  if (p.length) {
    const t0 = p[0][0], t1 = Math.max(p[p.length - 1][0], t0 + 1)
    const max = s.unit === 'ratio' ? 1 : Math.max(...p.map(x => x[1]), 1e-9)
    const xy = p.map(([t, v]) => ((t - t0) / (t1 - t0) * W).toFixed(1) + ',' + (H - 2 - v / max * (H - 4)).toFixed(1))
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline')
    line.setAttribute('points', p.length === 1 ? '0,' + xy[0].split(',')[1] + ' ' + W + ',' + xy[0].split(',')[1] : xy.join(' '))
    svg.append(line)
  }
  const last = p.length ? p[p.length - 1][1] : null
  return $('div', { class: 'series' }, $('div', { class: 'label' }, s.label + ': ', $('b', {}, show(last, s.unit))), svg)
}
function draw(st) {
  document.title = 'reelcdn ' + st.service + ' ' + st.id
  const main = $('main')
  main.append($('h1', {}, 'reelcdn ' + st.service + ' ', $('small', {}, st.id + ' · ' + new Date(st.at).toLocaleTimeString())))
  for (const sec of st.sections) {
    const box = $('section', { 'data-section': sec.key }, $('h2', {}, sec.title))
    if (sec.figures && sec.figures.length) {
      const dl = $('dl')
      for (const f of sec.figures) {
        const dd = $('dd', { 'data-figure': sec.key + '.' + f.key, 'data-value': JSON.stringify(f.value), class: cls(f.value, f.unit) }, show(f.value, f.unit))
        dl.append($('div', {}, $('dt', {}, f.label), dd))
      }
      box.append(dl)
    }
    for (const s of sec.series || []) box.append(spark(s, sec.key + '.' + s.key))
    for (const t of sec.tables || []) {
      if (!t.rows.length) { box.append($('p', { class: 'empty', 'data-table': t.key, 'data-rows': '0' }, t.empty || 'none')); continue }
      const head = $('tr'); for (const c of t.columns) head.append($('th', {}, c.label))
      const table = $('table', { 'data-table': t.key, 'data-rows': String(t.rows.length) }, $('thead', {}, head))
      const body = $('tbody')
      t.rows.forEach((r, i) => {
        const tr = $('tr')
        for (const c of t.columns) tr.append($('td', { 'data-label': c.label, 'data-cell': t.key + '.' + i + '.' + c.key, 'data-value': JSON.stringify(r[c.key] ?? null), class: cls(r[c.key], c.unit) }, show(r[c.key], c.unit)))
        body.append(tr)
      })
      table.append(body); box.append($('div', { class: 'scroll' }, table))
    }
    main.append(box)
  }
  document.querySelector('main').replaceWith(main)
  document.body.dataset.at = st.at
}
function login(msg) {
  const f = $('form', { id: 'login' }, $('h1', {}, 'reelcdn status'), $('p', {}, msg),
    $('label', {}, 'Admin token ', $('input', { type: 'password', name: 'token', autocomplete: 'off', required: '' })), $('button', {}, 'Show'))
  f.addEventListener('submit', e => { e.preventDefault(); sessionStorage.setItem(KEY, f.token.value.trim()); load() })
  document.querySelector('main').replaceChildren(f)
  document.body.dataset.login = msg
}
let timer
async function load() {
  clearTimeout(timer)
  const token = sessionStorage.getItem(KEY)
  if (!token) return login('This page shows the service\\'s own figures: it needs the admin token.')
  let res
  try { res = await fetch('/status.json', { headers: { authorization: 'Bearer ' + token }, cache: 'no-store' }) } catch (e) { timer = setTimeout(load, 5000); return }
  if (res.status === 401 || res.status === 403) { sessionStorage.removeItem(KEY); let m = ''; try { m = (await res.json()).error.message } catch {} return login('Refused: ' + m) }
  if (!res.ok) { timer = setTimeout(load, 5000); return }
  const st = await res.json()
  delete document.body.dataset.login
  draw(st)
  timer = setTimeout(load, st.refreshMs)
}
load()
`

const STYLE = `
:root{color-scheme:light dark;--bg:#fff;--fg:#123;--mute:#678;--line:#0a7;--box:#f3f5f7;--good:#0a7;--bad:#c22;--warn:#b80}
@media (prefers-color-scheme:dark){:root{--bg:#111;--fg:#dde;--mute:#99a;--box:#1c1f24}}
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
main{max-width:1100px;margin:auto;padding:12px;display:grid;gap:12px;grid-template-columns:repeat(auto-fit,minmax(320px,1fr))}
h1{grid-column:1/-1;font-size:1.3em;margin:4px 0}h1 small{color:var(--mute);font-weight:normal;font-size:.7em}
h2{font-size:1em;margin:0 0 8px}section{background:var(--box);border-radius:8px;padding:10px;min-width:0}
dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:6px;margin:0}dt{color:var(--mute);font-size:.8em}dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.good{color:var(--good)}.bad{color:var(--bad)}.warn{color:var(--warn)}
.series{margin-top:8px}.label{font-size:.85em;color:var(--mute)}.label b{color:var(--fg)}
svg{width:100%;height:48px;display:block}polyline{fill:none;stroke:var(--line);stroke-width:1.5;vector-effect:non-scaling-stroke}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.85em;margin-top:6px}th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #8884;white-space:nowrap}
.empty{color:var(--mute);font-size:.85em}form{grid-column:1/-1;max-width:420px}input{font:inherit;width:100%;padding:8px;margin:6px 0}button{font:inherit;padding:8px 16px}
`

const HASH = createHash('sha256').update(SCRIPT).digest('base64')
const HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>reelcdn status</title><style>${STYLE}</style></head>
<body><main><p>Loading…</p></main><script>${SCRIPT}</script></body></html>
`
const BODY = Buffer.from(HTML)
const CSP = `default-src 'none'; script-src 'sha256-${HASH}'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'`

/** Sends the console page (GET and HEAD). */
export function sendConsolePage(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': BODY.length, 'cache-control': 'no-cache',
    'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' })
  res.end(res.req.method === 'HEAD' ? undefined : BODY)
}
