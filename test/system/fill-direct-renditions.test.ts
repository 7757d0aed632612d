import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKEN } from './harness.js'
import { ingestLadder, makeLadder } from '../helpers/abr.js'
import { get, metric, startTestEdge } from '../helpers/edge.js'
import { directCluster } from '../helpers/direct-cluster.js'

/** An adaptive title's rendition fills direct too: the grant route's rendition form (/r/{rid}/fill/{i}). */
const CS = 65536

t.test('a rendition file fills from its owners under grants, byte-exact', async t => {
  const c = await directCluster(t, { chunkSize: CS })
  const dir = join(c.dir, 'ladder')
  await mkdir(dir, { recursive: true })
  const files = await makeLadder(dir, 3, { rungs: [{ id: 'v90', height: 90, kbps: 500 }] })
  await ingestLadder(c.url, 'abr', files, TOKEN)
  const v90 = files.find(f => f.id === 'v90')!
  t.ok(v90.bytes.length > CS, 'more than one chunk')
  const edge = await startTestEdge(t, { url: c.url, token: undefined })
  const got = await get(`${edge.url}/v1/content/abr/v90.mp4`)
  t.equal(got.status, 200)
  t.ok(got.body.equals(v90.bytes), 'byte-exact')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }), v90.bytes.length, 'every byte from the owners')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0)
  t.equal(await metric(c.url, 'reelcdn_router_bytes_served_total'), 0, 'none through the router')
})
