import t from 'tap'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../lib/config/config.js'
import { members } from '../../tools/cluster.js'

/**
 * Issue 14, item 11: `make run` wrote no edge admin token, so the README's
 * `$ADMIN` was never defined and purge and cache status could not be tried.
 * The cluster generates it like its other secrets, and the README defines
 * ADMIN from it before the first command that uses it.
 */
const README = fileURLToPath(new URL('../../../README.md', import.meta.url))

t.test('the cluster generates the edge admin token (mode 0600) and reuses it', async t => {
  const dir = t.testdir()
  const config = loadConfig({ env: {}, overrides: { 'local.dataDir': dir } })
  await members(config, {})
  const file = join(dir, 'edge-admin-token')
  const first = readFileSync(file, 'utf8').trim()
  t.match(first, /^[0-9a-f]{48}$/)
  t.equal(statSync(file).mode & 0o777, 0o600)
  await members(config, {})
  t.equal(readFileSync(file, 'utf8').trim(), first, 'a second run reuses it')
})

t.test('the README defines ADMIN from that file before it first uses $ADMIN', async t => {
  const text = readFileSync(README, 'utf8')
  const defined = text.indexOf('ADMIN=$(cat var/edge-admin-token)')
  const used = text.indexOf('$ADMIN')
  t.ok(defined >= 0, 'ADMIN is defined from ./var/edge-admin-token')
  t.ok(used < 0 || defined < used, 'before its first use')
})
