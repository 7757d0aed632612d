import t from 'tap'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../lib/config/config.js'
import { KeyRing } from '../lib/security/tokens.js'
import { members } from './cluster.js'

/**
 * `make run` (reelcdn cluster) generates every secret it needs into its data
 * directory on the first run, and reuses them afterwards: without the token
 * keys /v1/play answers 503, without the edge credential the edge never
 * registers and steering has no edge to offer, without the shard token shards
 * refuse every write, without the edge admin token purge is refused.
 */
t.test('the first run generates the admin token, the shard token, the token keys and the edge credentials; later runs reuse them', async t => {
  const dir = t.testdir()
  const config = loadConfig({ env: {}, overrides: { 'local.dataDir': dir } })
  const names = (await members(config, {})).map(m => m.name)
  t.same(names, ['shard-1', 'shard-2', 'shard-3', 'router', 'edge'])
  const read = (f: string) => readFileSync(join(dir, f), 'utf8').trim()
  const first = { admin: read('router-token'), keys: read('token-keys'), edge: read('edge-token') }
  t.match(first.admin, /^[0-9a-f]{48}$/)
  t.match(first.edge, /^[0-9a-f]{48}$/)
  t.ok(KeyRing.parse(first.keys).key('k1'), 'the token keys parse, as k1')
  for (const f of ['router-token', 'shard-token', 'token-keys', 'edge-token', 'edge-admin-token'])
    t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is private`)
  await members(config, {})
  t.same({ admin: read('router-token'), keys: read('token-keys'), edge: read('edge-token') }, first, 'a second run reuses them')
  writeFileSync(join(dir, 'edge-token'), '')
  await members(config, {})
  t.not(read('edge-token'), '', 'an emptied file is filled again')
})

t.test('secrets given by the environment are not generated', async t => {
  const dir = t.testdir()
  const config = loadConfig({ env: {}, overrides: { 'local.dataDir': dir } })
  await members(config, { REELCDN_ROUTER_TOKEN: 'x'.repeat(20), REELCDN_TOKEN_KEYS: 'k7:a-secret-of-sixteen-plus', REELCDN_EDGE_TOKEN: 'y'.repeat(20),
    REELCDN_SHARD_TOKEN: 'z'.repeat(20), REELCDN_EDGE_ADMIN_TOKEN: 'w'.repeat(20) })
  for (const f of ['router-token', 'shard-token', 'token-keys', 'edge-token', 'edge-admin-token']) t.throws(() => statSync(join(dir, f)), { code: 'ENOENT' }, `no ${f}`)
})

t.test('with router.requireToken, the edge gets a fill credential the router accepts', async t => {
  const dir = t.testdir()
  await members(loadConfig({ env: {}, overrides: { 'local.dataDir': dir } }), {})
  t.throws(() => statSync(join(dir, 'read-token')), { code: 'ENOENT' }, 'no read token by default: reads stay open under make run')
  await members(loadConfig({ env: {}, overrides: { 'local.dataDir': dir, 'router.requireToken': true } }), {})
  t.match(readFileSync(join(dir, 'read-token'), 'utf8').trim(), /^[0-9a-f]{48}$/)
})
