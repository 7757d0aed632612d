import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { isAbsolute, join, relative, resolve } from 'node:path'
import { startCluster } from '../../tools/cluster.js'
import { localClusterConfig } from '../helpers/local-cluster.js'

/**
 * Issue 14, item 12: `cluster --data-dir DIR` left the router's SQLite state
 * (trending, sessions) in ./var/router of the working directory, so two
 * clusters started from one checkout shared one router database. Every
 * member's state goes under the data dir. Run from an empty working directory,
 * so anything written relative to it shows.
 */

/** Every setting that names a directory or a file, with its path in the config. */
function pathSettings(tree: unknown, prefix = ''): [string, string][] {
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) return []
  const out: [string, string][] = []
  for (const [k, v] of Object.entries(tree)) {
    if (typeof v === 'string' && /(Dir|File)$/.test(k)) out.push([prefix + k, v])
    else out.push(...pathSettings(v, `${prefix}${k}.`))
  }
  return out
}

t.test('two clusters with their own data dirs share nothing, and nothing lands in the working directory', async t => {
  const base = t.testdir()
  const cwd = join(base, 'cwd')
  mkdirSync(cwd)
  const was = process.cwd()
  process.chdir(cwd)
  t.teardown(() => process.chdir(was))
  const a = await startCluster(localClusterConfig(join(base, 'a')), {}, { sample: false })
  t.teardown(() => a.close())
  const b = await startCluster(localClusterConfig(join(base, 'b')), {}, { sample: false })
  t.teardown(() => b.close())
  for (const d of ['a', 'b']) {
    t.ok(existsSync(join(base, d, 'router', 'trending.sqlite')), `${d}: the router's trending store is under its data dir`)
    t.ok(existsSync(join(base, d, 'router', 'sessions.sqlite')), `${d}: and its sessions store`)
  }
  t.notOk(existsSync(join(cwd, 'var')), 'no ./var in the working directory')

  // the class: every path setting of every member is under the data dir, or unset
  for (const m of a.members) {
    for (const [path, value] of pathSettings(m.config)) {
      if (value === '') continue
      const rel = relative(resolve(base, 'a'), resolve(value))
      t.ok(!rel.startsWith('..') && !isAbsolute(rel), `${m.name}: ${path} (${value}) is under the data dir`)
    }
  }
})
