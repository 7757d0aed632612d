import t from 'tap'
import { createHash } from 'node:crypto'
import { loadConfig } from '../../lib/config/config.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { get, metric, settled, until } from '../helpers/edge.js'
import { titleBytes } from '../helpers/titles.js'
import { installSecrets, samplePath, SAMPLES, startSampleCluster } from '../helpers/deploy.js'

/**
 * The sample configs under deploy/config (docs/install.md) are what an
 * operator copies to /etc/reelcdn: each must load through the real config
 * loader as shipped, and together they must make a working cluster. Here
 * three shards, a router and an edge start from them, in a test directory
 * (secrets and data dirs moved there, test/helpers/deploy.ts) with only the
 * listening ports and the shards' addresses changed; a title ingested with
 * the admin token is read back through the edge, which fills it directly from
 * the shards under the router's grants and registers with its edge token.
 */
t.test('each sample config loads as shipped', async t => {
  for (const role of SAMPLES) {
    const c = loadConfig({ file: samplePath(role), env: {} })
    t.ok(c, `${role}.json is valid`)
    t.equal(c.log.file, '', `${role}.json logs to stdout (journald)`)
  }
})

t.test('a cluster started from the sample configs ingests a title and serves it through the edge', async t => {
  const dir = t.testdir()
  const secrets = await installSecrets(dir)
  const local = { 'log.level': 'silent', 'http.shutdownGraceMs': 0 }

  // the sample's shard reserve (20 GiB) is for a real disk: the helper sets none
  const { router, edge } = await startSampleCluster(t, dir, local)

  const body = titleBytes(300_000, 'samples')
  const sha = createHash('sha256').update(body).digest('hex')
  const { request } = await import('undici')
  const put = await request(`${router.url}/v1/content/sample`, { method: 'PUT', body,
    headers: { authorization: `Bearer ${secrets['admin-token']}`, 'content-digest': digestHeader(sha) } })
  await put.body.dump()
  t.equal(put.statusCode, 201, 'ingest with the admin token from the sample\'s tokenFile')
  t.equal((await get(`${router.url}/v1/content/sample`)).status, 401, 'the router\'s reads need the read token (router.readTokenFile)')

  const r = await get(`${edge.url}/v1/content/sample`, { range: 'bytes=1000-199999' })
  t.equal(r.status, 206)
  t.ok(r.body.equals(body.subarray(1000, 200_000)), 'the edge serves the title, every byte')
  t.ok(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }) > 0,
    'filled from the shards directly, under grants signed with the shared shard token')
  await until(async () => {
    const e = await get(`${router.url}/v1/edges`, { authorization: `Bearer ${secrets['admin-token']}` })
    return e.status === 200 && (JSON.parse(e.body.toString()) as { edges: { id: string }[] }).edges.some(x => x.id === 'edge-1')
  }, 'the edge\'s heartbeat, with the edge token')
  t.pass('the router lists edge-1')
  t.equal((await get(`${edge.url}/v1/cache`)).status, 401, 'the edge\'s admin routes need its admin token')
  t.equal((await get(`${edge.url}/v1/cache`, { authorization: `Bearer ${secrets['edge-admin-token']}` })).status, 200, 'and take it')
  await settled(edge)
})
