import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { catalog, loadDeployment, parseCapacity, uniformDeployment } from './deployment.js'
import { generateSessions, readSessions, writeSessions } from './sessions.js'

const CHUNK = 64 * 1024 ** 2

t.test('capacities: a share of the catalog or a size, absurd ones refused by name', async t => {
  t.equal(parseCapacity('5%', 1000, CHUNK, 'cap'), 50)
  t.equal(parseCapacity('1GiB', 1000, CHUNK, 'cap'), 16)
  t.throws(() => parseCapacity('0%', 1000, CHUNK, 'edge capacity'), /edge capacity: expected a share of the catalog above 0 %/)
  t.throws(() => parseCapacity('150%', 1000, CHUNK, 'cap'), /at most 100 %/)
  t.throws(() => parseCapacity('2000TiB', 1000, CHUNK, 'cap'), /absurd for one edge/)
  t.throws(() => parseCapacity('1MiB', 1000, CHUNK, 'cap'), /holds no whole chunk/)
  t.throws(() => parseCapacity('lots', 1000, CHUNK, 'cap'), /cap: expected a size/)
})

t.test('catalogs and uniform deployments refuse zero and absurd sizes', async t => {
  t.throws(() => catalog(0, 10, 40, 1), /titles: expected a whole number from 1/)
  t.throws(() => catalog(10, 40, 10, 1), /max chunks per title \(at least the min\)/)
  t.throws(() => catalog(5_000_000, 90_000, 100_000, 1), /absurd/)
  const titles = catalog(10, 2, 4, 1)
  t.throws(() => uniformDeployment({ sites: 1, edgesPerSite: 0, edgeCapacity: '5%', titles }), /edges per site: expected a whole number from 1 to 255, got 0/)
  t.throws(() => uniformDeployment({ sites: 0, edgesPerSite: 2, edgeCapacity: '5%', titles }), /sites: expected/)
  const d = uniformDeployment({ sites: 2, edgesPerSite: 3, edgeCapacity: '50%', titles })
  t.same(d.sites.map(s => s.edges.map(e => e.id)), [['s0-e0', 's0-e1', 's0-e2'], ['s1-e0', 's1-e1', 's1-e2']])
})

t.test('a deployment file: sites, edges, capacities; a site without edges is refused', async t => {
  const dir = t.testdir()
  const good = join(dir, 'good.json')
  writeFileSync(good, JSON.stringify({ titles: [10, 20, 30], sites: [{ id: 'fra', viewers: 3, edges: [{ id: 'fra-1', capacity: '10%' }, { capacity: '1GiB' }] }] }))
  const d = loadDeployment(good)
  t.same(d.sites[0]!.edges.map(e => [e.id, e.capacityChunks]), [['fra-1', 6], ['fra-e1', 16]])
  t.equal(d.sites[0]!.viewers, 3)
  const bad = (name: string, body: unknown, re: RegExp) => {
    const f = join(dir, name)
    writeFileSync(f, JSON.stringify(body))
    t.throws(() => loadDeployment(f), re, name)
  }
  bad('no-edges.json', { titles: [10], sites: [{ id: 'ams', edges: [] }] }, /site ams has no edges/)
  bad('no-sites.json', { titles: [10], sites: [] }, /sites must list at least one site/)
  bad('dup.json', { titles: [10], sites: [{ edges: [{ id: 'x', capacity: '50%' }, { id: 'x', capacity: '50%' }] }] }, /edge id x is used twice/)
  bad('huge.json', { titles: [10], sites: [{ edges: [{ capacity: '2000TiB' }] }] }, /absurd/)
  bad('viewers.json', { titles: [10], sites: [{ viewers: -1, edges: [{ capacity: '50%' }] }] }, /viewers must be a positive number/)
  bad('titles.json', { titles: 'many', sites: [] }, /titles must be a list/)
  t.throws(() => loadDeployment(join(dir, 'missing.json')), /cannot read deployment/)
})

t.test('sessions: a generated trace written and read back is the same trace; bad lines are refused with their number', async t => {
  const dir = t.testdir()
  const dep = uniformDeployment({ sites: 3, edgesPerSite: 2, edgeCapacity: '10%', titles: catalog(50, 5, 9, 1) })
  const model = { sessions: 500, hours: 1, zipf: 0.9, seed: 7 }
  const file = join(dir, 'trace.txt')
  t.equal(writeSessions(file, generateSessions(dep, model)), 500)
  const gen: string[] = [] // the generator reuses one object: copy while iterating
  for (const s of generateSessions(dep, model)) gen.push(`${Math.round(s.at)} ${s.site} ${s.title} ${s.first} ${s.count}`)
  const back: string[] = []
  for (const s of readSessions(file, dep)) back.push(`${s.at} ${s.site} ${s.title} ${s.first} ${s.count}`)
  t.same(back, gen)
  t.ok(new Set(gen.map(l => l.split(' ')[1])).size === 3, 'viewers at every site')
  const bad = (body: string, re: RegExp) => {
    const f = join(dir, 'bad.txt')
    writeFileSync(f, body)
    t.throws(() => [...readSessions(f, dep)], re)
  }
  bad('# header\n10 0 1 0 3\n5 0 1 0 3\n', /line 3: arrivals must not go back in time/)
  bad('10 7 1 0 3\n', /line 1: site must be an index below 3/)
  bad('10 0 50 0 3\n', /title must be an index below 50/)
  bad('10 0 1 99 3\n', /first chunk must be below/)
  bad('10 0 1 0\n', /expected 5 numbers/)
})
