import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ALERTS, dashboardQueries, dashboards, metricNames, topLevelOperands } from '../helpers/promql.js'

/**
 * Grafana is not packaged in Debian, so the dashboards under
 * deploy/grafana/dashboards/ are checked here by loading their JSON: what a
 * provisioned dashboard needs (a uid, panels on a 24-column grid, each with
 * its queries), the data source taken from the `datasource` variable rather
 * than a uid of one installation, and every metric a query reads declared in
 * lib/metrics.ts. prometheus-deploy.test.ts then runs every query on a real
 * Prometheus scraping a cluster. Beside them, the alert rules' runbook links
 * are checked against docs/runbook.md's sections.
 */
const METRICS_TS = fileURLToPath(new URL('../../../lib/metrics.ts', import.meta.url))
const RUNBOOK = fileURLToPath(new URL('../../../docs/runbook.md', import.meta.url))

/** Names lib/metrics.ts declares, with a histogram's exported series, and Prometheus's own `up`. */
function declared(): Set<string> {
  const src = readFileSync(METRICS_TS, 'utf8')
  const names = new Set(['up'])
  for (const m of src.matchAll(/new (Counter|Gauge|Histogram)\(\{ name: '([a-z_:][a-z0-9_:]*)'/g)) {
    names.add(m[2]!)
    if (m[1] === 'Histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[2]! + s)
  }
  return names
}

const DS = '${datasource}'

t.test('every dashboard is valid provisioning JSON with its data source as a variable', async t => {
  const all = dashboards()
  t.same(all.map(d => d.file), ['edge-fleet.json', 'router.json', 'shards.json'])
  t.equal(new Set(all.map(d => d.json.uid)).size, all.length, 'uids are distinct')
  for (const { file, json: d } of all) {
    t.match(d, { uid: String, title: String, schemaVersion: Number, panels: Array, templating: { list: Array } }, `${file}: dashboard essentials`)
    t.notOk('id' in d && d.id !== null, `${file}: no database id (provisioning assigns one)`)
    const ds = d.templating.list.find((v: any) => v.type === 'datasource')
    t.match(ds, { name: 'datasource', query: 'prometheus' }, `${file}: a Prometheus data source variable`)
    const ids = new Set<number>()
    for (const p of d.panels) {
      t.notOk(ids.has(p.id), `${file}: panel id ${p.id} is unique`)
      ids.add(p.id)
      t.ok(p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24 && p.gridPos.h > 0, `${file} "${p.title}": on the 24-column grid`)
      if (p.type === 'row') continue
      t.ok(typeof p.title === 'string' && p.title.length > 0, `${file}: panel ${p.id} has a title`)
      t.equal(p.datasource?.uid, DS, `${file} "${p.title}": data source from the variable`)
      t.ok(Array.isArray(p.targets) && p.targets.length > 0, `${file} "${p.title}": has queries`)
      t.equal(new Set(p.targets.map((q: any) => q.refId)).size, p.targets.length, `${file} "${p.title}": distinct refIds`)
      for (const q of p.targets) {
        t.equal(q.datasource?.uid, DS, `${file} "${p.title}" ${q.refId}: data source from the variable`)
        t.ok(typeof q.expr === 'string' && q.expr.trim().length > 0, `${file} "${p.title}" ${q.refId}: an expression`)
      }
    }
    for (const v of d.templating.list.filter((v: any) => v.type === 'query')) t.equal(v.datasource?.uid, DS, `${file} $${v.name}: data source from the variable`)
    // a query's $variables are the dashboard's own or Grafana's built-ins ($__rate_interval and the like)
    const vars = new Set(d.templating.list.map((v: any) => v.name))
    for (const q of dashboardQueries({ file, json: d })) {
      for (const m of q.expr.matchAll(/\$\{?(\w+)/g)) t.ok(m[1]!.startsWith('__') || vars.has(m[1]), `${file} ${q.panel}: $${m[1]} is defined`)
    }
  }
})

t.test('every metric a dashboard reads is declared in lib/metrics.ts', async t => {
  const known = declared()
  t.ok(known.size > 50, 'found the declarations')
  let n = 0
  for (const d of dashboards()) {
    for (const q of dashboardQueries(d)) {
      const names = metricNames(q.expr)
      t.ok(names.length > 0, `${q.file} ${q.panel}: reads a metric`)
      for (const name of names) t.ok(known.has(name), `${q.file} ${q.panel}: ${name} is declared`)
      n++
    }
  }
  t.ok(n >= 40, `${n} queries checked`)
})

t.test('the PromQL reader finds names and not labels, functions or keywords', async t => {
  t.same(metricNames('sum by (instance) (rate(a_total{x="y",z=~"q|r"}[5m]) or rate(b{}[1m]) * 0) / ignoring (kind) c offset 1d > bool 1e6'), ['a_total', 'b', 'c'])
  t.same(metricNames('histogram_quantile(0.99, sum by (le) (rate(h_bucket{s="}"}[$__rate_interval])))'), ['h_bucket'])
  t.same(metricNames('count(up == 0) or vector(0)'), ['up'])
  t.same(topLevelOperands('1 - a / b < 0.5\n  and sum by (i) (c) > 1e6'), ['1 - a / b', '0.5', 'sum by (i) (c)', '1e6'])
  t.same(topLevelOperands('a{x=">"} > bool on (i) group_left (j) b or (c < d)'), ['a{x=">"}', 'b', '(c < d)'])
})

t.test('every alert rule links a runbook section that exists, and every section is linked', async t => {
  const rules = readFileSync(ALERTS, 'utf8')
  const runbook = readFileSync(RUNBOOK, 'utf8')
  // GitHub's anchors: a heading lowercased, spaces to dashes, other punctuation dropped
  const anchors = new Set([...runbook.matchAll(/^#+ (.+)$/gm)].map(m => m[1]!.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')))
  const alerts = [...rules.matchAll(/^\s+- alert: (\w+)$/gm)].map(m => m[1]!)
  const links = [...rules.matchAll(/^\s+runbook_url: "docs\/runbook\.md#([a-z0-9-]+)"$/gm)].map(m => m[1]!)
  t.ok(alerts.length >= 10, `${alerts.length} alerts`)
  t.equal(links.length, alerts.length, 'one runbook_url per alert')
  for (const a of links) t.ok(anchors.has(a), `docs/runbook.md has #${a}`)
  for (const h of [...runbook.matchAll(/^## (Reelcdn\w+)$/gm)].map(m => m[1]!)) t.ok(alerts.includes(h), `the runbook's ${h} is an alert of alerts.yml`)
})
