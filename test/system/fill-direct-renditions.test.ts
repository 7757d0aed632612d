import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKEN } from './harness.js'
import { ingestLadder, makeLadder } from '../helpers/abr.js'
import { get, metric, startTestEdge } from '../helpers/edge.js'
import { directCluster } from '../helpers/direct-cluster.js'

/** An adaptive title's rendition fills direct too: the grant route's rendition form (/r/{rid}/fill/{i}). */
const CS = 65536

/** A direct-fill cluster holding the adaptive title `abr`, one 90p rendition of 3 s. */
async function ladderCluster(t: Parameters<typeof directCluster>[0]) {
  const c = await directCluster(t, { chunkSize: CS })
  const dir = join(c.dir, 'ladder')
  await mkdir(dir, { recursive: true })
  const files = await makeLadder(dir, 3, { rungs: [{ id: 'v90', height: 90, kbps: 500 }] })
  await ingestLadder(c.url, 'abr', files, TOKEN)
  return { c, files }
}

t.test('a rendition file fills from its owners under grants, byte-exact', async t => {
  const { c, files } = await ladderCluster(t)
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

t.test('manifest=1 on the rendition form: the manifest alone for a rendition the title lacks and for the title asked without one; grants with it for one it has', async t => {
  const { c } = await ladderCluster(t)
  const ask = async (path: string) => {
    const r = await fetch(`${c.url}${path}`)
    return { status: r.status, json: await r.json() as { chunks: { index: number }[]; manifest?: { contentId: string; renditions?: unknown[] } } }
  }
  const has = await ask('/v1/content/abr/r/v90/fill/0?count=2&manifest=1')
  t.equal(has.status, 200)
  t.ok(has.json.chunks.length >= 1, 'grants for the rendition it has')
  t.equal(has.json.manifest?.contentId, 'abr')
  t.ok(Array.isArray(has.json.manifest?.renditions), 'the adaptive title\'s manifest, renditions and all')
  for (const path of ['/v1/content/abr/r/v9999/fill/0?manifest=1', '/v1/content/abr/fill/0?manifest=1']) {
    const r = await ask(path)
    t.same([r.status, r.json.chunks.length, r.json.manifest?.contentId], [200, 0, 'abr'], `${path}: the manifest alone`)
  }
  t.equal((await ask('/v1/content/abr/r/v9999/fill/0')).status, 404, 'without manifest=1: the 404 as before')
  t.equal(await metric(c.url, 'reelcdn_router_fill_grants_total', { result: 'manifest_only' }), 2)
  t.equal(await metric(c.url, 'reelcdn_router_fill_grants_total', { result: 'not_found' }), 1)
})
