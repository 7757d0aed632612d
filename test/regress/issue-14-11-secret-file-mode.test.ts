import t from 'tap'
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../lib/config/config.js'
import { loadSecret } from '../../lib/security/auth.js'
import { loadKeyRing } from '../../lib/security/tokens.js'
import { ensureSecret, members } from '../../tools/cluster.js'
import { startTestOrigin } from '../helpers/origin.js'

/**
 * Issue 14, items 10 and 11 (review): `reelcdn cluster` generates its secrets
 * (edge-admin-token, shard-token, ...) with ensureSecret, which gave mode 0600
 * only to a file it created: a file that existed empty (emptied, or created
 * by hand with a umask of 022) was filled with a new secret readable by every
 * user of the machine. And a secret file others could read was used as it
 * was, by ensureSecret and by every service reading a token file. Now every
 * write leaves the file 0600, and a secret file its group or others may read
 * or write is refused wherever it is used, naming the file and its mode.
 */
const mode = (f: string) => statSync(f).mode & 0o777

t.test('an empty secret file others can read is filled and left 0600', async t => {
  const dir = t.testdir({ 'edge-admin-token': '' })
  const file = join(dir, 'edge-admin-token')
  chmodSync(file, 0o644)
  await ensureSecret(file, () => 'fresh-secret')
  t.equal(readFileSync(file, 'utf8').trim(), 'fresh-secret')
  t.equal(mode(file).toString(8), '600', 'private after the write')
})

t.test('every secret make run generates is 0600, even where an empty file was left open', async t => {
  const names = ['router-token', 'shard-token', 'token-keys', 'edge-token', 'edge-admin-token']
  const dir = t.testdir(Object.fromEntries(names.map(n => [n, ''])))
  for (const n of names) chmodSync(join(dir, n), 0o666)
  await members(loadConfig({ env: {}, overrides: { 'local.dataDir': dir } }), {})
  for (const n of names) t.equal(mode(join(dir, n)).toString(8), '600', `${n} is private`)
})

t.test('a secret file its group or others may read or write is refused, naming the file and its mode', async t => {
  const dir = t.testdir({ 'shard-token': 'an-old-secret\n' })
  const file = join(dir, 'shard-token')
  for (const m of [0o644, 0o640, 0o604, 0o620]) {
    chmodSync(file, m)
    await t.rejects(ensureSecret(file, () => 'new'), { code: 'CDN_ERR_CONFIG', message: `${file} has mode 0${m.toString(8)}: a secret file must not be readable or writable by its group or others; run chmod 600 ${file}` }, `ensureSecret, 0${m.toString(8)}`)
    t.equal(readFileSync(file, 'utf8'), 'an-old-secret\n', 'the file is left as it was')
  }
  chmodSync(file, 0o644)
  t.throws(() => loadSecret(file, 'REELCDN_SHARD_TOKEN', {}), { code: 'CDN_ERR_CONFIG', message: /shard-token has mode 0644: .*chmod 600/ }, 'a service reading it as its token')
  writeFileSync(join(dir, 'keys'), 'k1:a-secret-of-sixteen-plus\n', { mode: 0o644 })
  chmodSync(join(dir, 'keys'), 0o644)
  t.throws(() => loadKeyRing(join(dir, 'keys'), {}), { code: 'CDN_ERR_CONFIG', message: /keys has mode 0644/ }, 'play-token keys')
  await t.rejects(startTestOrigin(t, { 'origin.tokenFile': file }, join(dir, 'data')), { message: /shard-token has mode 0644/ }, 'a shard does not start on it')

  chmodSync(file, 0o600)
  t.equal(await ensureSecret(file, () => 'new'), file)
  t.equal(readFileSync(file, 'utf8'), 'an-old-secret\n', '0600: used as it is')
  t.equal(loadSecret(file, 'REELCDN_SHARD_TOKEN', {}), 'an-old-secret')
  chmodSync(file, 0o400)
  t.equal(loadSecret(file, 'REELCDN_SHARD_TOKEN', {}), 'an-old-secret', '0400 too')
})
