import t, { type Test } from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { TestCluster, TOKEN, randomBody, replicas } from './harness.js'

/**
 * DELETE /v1/content/{id} removes the manifest first, then the chunks (issue 3):
 * seen at the shards, through a proxy in front of each that records when every
 * request arrives and when its answer has been sent back.
 */
const CS = 65536

interface Event { seq: number; shard: string; method: string; path: string; phase: 'arrived' | 'answered' }

/** A pass-through proxy to `target` that appends to `events`. */
async function recordingProxy(t: Test, shard: string, target: string, events: Event[], seq: { n: number }): Promise<string> {
  const agent = new http.Agent({ keepAlive: true })
  const server = http.createServer((req, res) => {
    const base = { shard, method: req.method ?? '', path: req.url ?? '' }
    events.push({ ...base, seq: seq.n++, phase: 'arrived' })
    const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers, agent }, ur => {
      res.writeHead(ur.statusCode ?? 502, ur.headers)
      ur.pipe(res)
      ur.on('end', () => events.push({ ...base, seq: seq.n++, phase: 'answered' }))
    })
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { server.closeAllConnections(); agent.destroy(); server.close(() => r()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('DELETE of a title: every manifest copy is gone before the first chunk copy is deleted', async t => {
  const c = await TestCluster.start(t, { shards: 4, chunkSize: CS })
  const events: Event[] = []
  const seq = { n: 0 }
  const shards = []
  for (let i = 0; i < 4; i++) shards.push({ id: `shard-${i + 1}`, url: await recordingProxy(t, `shard-${i + 1}`, `http://127.0.0.1:${c.ports[i]}`, events, seq), weight: 1 })
  await c.startRouter(4, { 'cluster.shards': shards })

  const body = randomBody(6 * CS + 5)
  const put = await c.ingest('doomed', body)
  t.equal(put.status, 201)
  t.equal(put.json.chunks, 7)
  const held = [...replicas(c)].filter(r => r.includes(`:doomed.${put.json.version}/`)).length
  t.equal(held, 7 * 3, 'three copies of each chunk before the delete')

  events.length = 0
  const res = await request(`${c.url}/v1/content/doomed`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
  const out = await res.body.json() as Record<string, unknown>
  t.equal(res.statusCode, 200)
  t.equal(out.chunkReplicasDeleted, 21)

  const deletes = events.filter(e => e.method === 'DELETE')
  const manifestDeletes = deletes.filter(e => e.path === '/v1/manifests/doomed')
  const chunkDeletes = deletes.filter(e => e.path.startsWith('/v1/chunks/'))
  t.equal(manifestDeletes.filter(e => e.phase === 'answered').length, 4, 'the manifest was deleted from every shard')
  t.equal(chunkDeletes.filter(e => e.phase === 'arrived').length, 21, 'and each chunk copy from its owner')
  const lastManifest = Math.max(...manifestDeletes.map(e => e.seq))
  const firstChunk = Math.min(...chunkDeletes.map(e => e.seq))
  t.ok(lastManifest < firstChunk, `the last manifest delete was answered (event ${lastManifest}) before the first chunk delete arrived (event ${firstChunk})`)

  t.equal([...replicas(c)].filter(r => r.includes(':doomed.')).length, 0, 'no chunk copy is left')
  t.equal((await c.get('/v1/content/doomed')).status, 404)
})
