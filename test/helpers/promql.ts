import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

/**
 * Just enough PromQL for the deploy/ checks (issue 18): the metric names an
 * expression reads, its top-level operands (so an alert's signal can be asked
 * for apart from its threshold), and the expressions the dashboards and the
 * rules file hold, found by reading the files rather than listed by hand.
 */
export const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url))
export const DASHBOARDS = join(DEPLOY, 'grafana', 'dashboards')
export const ALERTS = join(DEPLOY, 'prometheus', 'alerts.yml')

/** words that are not metric names where a name could stand (aggregations too: `sum by (x) (...)`) */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan',
  'sum', 'min', 'max', 'avg', 'count', 'group', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values'])
/** keywords followed by a label list, not by an expression */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right'])

/** The index just past the bracket that closes the one at `i`, skipping strings inside. */
function skipGroup(s: string, i: number): number {
  const close = { '{': '}', '[': ']', '(': ')' }[s[i]!]!
  const open = s[i]!
  let depth = 0
  for (; i < s.length; i++) {
    const c = s[i]!
    if (c === '"' || c === '\'' || c === '`') i = skipString(s, i) - 1
    else if (c === open) depth++
    else if (c === close && --depth === 0) return i + 1
  }
  throw new Error(`unbalanced ${open} in ${s}`)
}

function skipString(s: string, i: number): number {
  const q = s[i]!
  for (i++; i < s.length; i++) {
    if (s[i] === '\\') i++
    else if (s[i] === q) return i + 1
  }
  throw new Error(`unterminated string in ${s}`)
}

/** Metric names an expression reads (a histogram's as exported: `..._bucket`). */
export function metricNames(expr: string): string[] {
  const names = new Set<string>()
  for (let i = 0; i < expr.length;) {
    const c = expr[i]!
    if (c === '"' || c === '\'' || c === '`') i = skipString(expr, i)
    else if (c === '{' || c === '[') i = skipGroup(expr, i)
    else if (/[0-9.]/.test(c)) { while (i < expr.length && /[0-9a-zA-Z_.]/.test(expr[i]!)) i++ }
    else if (/[a-zA-Z_:]/.test(c)) {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))![0]
      i += m.length
      let j = i
      while (/\s/.test(expr[j] ?? '')) j++
      if (LABEL_LISTS.has(m)) { if (expr[j] === '(') i = skipGroup(expr, j) }
      else if (expr[j] === '(' || KEYWORDS.has(m.toLowerCase())) { /* a function or an operator */ }
      else names.add(m)
    } else i++
  }
  return [...names]
}

/**
 * The operands of an expression's top-level comparisons and set operations:
 * `1 - a / b < 0.5 and c > 1e6` gives `1 - a / b`, `0.5`, `c`, `1e6`. An
 * alert's expression returns nothing while it does not fire; its operands
 * return data whenever the metrics behind them exist.
 */
export function topLevelOperands(expr: string): string[] {
  const parts: string[] = []
  let start = 0
  for (let i = 0; i < expr.length;) {
    const c = expr[i]!
    if (c === '"' || c === '\'' || c === '`') { i = skipString(expr, i); continue }
    if (c === '{' || c === '[' || c === '(') { i = skipGroup(expr, i); continue }
    const op = /^(==|!=|>=|<=|>|<)/.exec(expr.slice(i))?.[0]
      ?? (/[\s)]/.test(expr[i - 1] ?? ' ') ? /^(and|or|unless)(?=[\s(])/.exec(expr.slice(i))?.[0] : undefined)
    if (op) {
      parts.push(expr.slice(start, i))
      i += op.length
      start = i
      continue
    }
    if (/[a-zA-Z_:]/.test(c)) { i += /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))![0].length; continue }
    i++
  }
  parts.push(expr.slice(start))
  // what follows an operator may start with its modifiers: bool, on (...), ignoring (...), group_left (...)
  return parts.map(p => {
    let s = p.trim()
    for (;;) {
      const m = /^(bool|on|ignoring|group_left|group_right)\b\s*/.exec(s)
      if (!m) return s
      s = s.slice(m[0].length)
      if (m[1] !== 'bool' && s.startsWith('(')) s = s.slice(skipGroup(s, 0)).trim()
    }
  })
}

export interface DashboardQuery { file: string; panel: string; expr: string }
export interface Dashboard { file: string; json: any }

export function dashboards(): Dashboard[] {
  return readdirSync(DASHBOARDS).filter(f => f.endsWith('.json')).sort()
    .map(file => ({ file, json: JSON.parse(readFileSync(join(DASHBOARDS, file), 'utf8')) }))
}

/** Every panel's targets (rows' nested panels too) and every query variable, as written. */
export function dashboardQueries(d: Dashboard): DashboardQuery[] {
  const out: DashboardQuery[] = []
  const walk = (panels: any[]) => {
    for (const p of panels ?? []) {
      for (const target of p.targets ?? []) out.push({ file: d.file, panel: `${p.title} (${target.refId})`, expr: target.expr })
      walk(p.panels)
    }
  }
  walk(d.json.panels)
  for (const v of d.json.templating?.list ?? []) {
    if (v.type !== 'query') continue
    const q = typeof v.query === 'string' ? v.query : v.query?.query
    // label_values(<selector>, label): the selector is the query Prometheus answers
    const lv = /^label_values\((.*),\s*[a-zA-Z_]\w*\)$/.exec(q)
    out.push({ file: d.file, panel: `variable $${v.name}`, expr: lv ? lv[1]! : q })
  }
  return out
}

/**
 * What Grafana would put for its variables: every instance, and a rate
 * window wide enough for a test's short history at a short scrape interval.
 */
export function substitute(expr: string, rateWindow = '1m'): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, rateWindow).replace(/\$\{?instance\}?/g, '.*')
}
