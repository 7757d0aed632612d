import t, { type Test } from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { TestCluster, TOKEN, replicas } from './harness.js'
import { ADAPTIVE_TYPE, makeLadder, publish, putRendition, recordOf, storedLocally, type LadderFile, type Stored } from '../helpers/abr.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { chunkKey } from '../../router/cluster/keys.js'

/**
 * The two-step ingest of an adaptive title (docs/abr.md, "Ingest") refuses
 * every bad input by name — which rendition, which chunk — with the right
 * status, and leaves nothing visible: a rendition upload without a digest or
 * with a wrong one, a bad rendition id, a publish body that is not a ladder,
 * a record that is not what its upload answered, a misaligned ladder, a
 * rendition never uploaded, a chunk lost from its owners, a shard that does
 * not answer, a body past the manifest limit.
 */
const CS = 65536

const c = await TestCluster.start(t, { chunkSize: CS })
const dir = join(c.dir, 'ladder')
await mkdir(dir, { recursive: true })
const files = await makeLadder(dir, 6, { misaligned: true })
const file = (id: string): LadderFile => files.find(f => f.id === id)!
const ladder = ['v180', 'v90', 'a64'].map(file)

/** Uploads the files under `id`; their records, as the publish body takes them. */
async function upload(id: string, fs: LadderFile[]): Promise<Rendition[]> {
  const out: Rendition[] = []
  for (const f of fs) {
    const r = await putRendition(c.url, id, f.id, f.bytes, TOKEN)
    if (r.status !== 200) throw new Error(`${f.id}: ${r.status} ${JSON.stringify(r.json)}`)
    out.push(recordOf(f, r.json as Stored))
  }
  return out
}

async function invisible(t: Test, id: string): Promise<void> {
  t.equal((await c.get(`/v1/content/${id}/meta`)).status, 404, `${id}: no manifest`)
  t.equal((await c.get(`/v1/content/${id}/master.m3u8`)).status, 404, `${id}: no playlist`)
  t.notOk(JSON.parse((await c.get('/v1/content')).body.toString()).items.some((i: any) => i.contentId === id), `${id}: not listed`)
}

t.test('a rendition upload: the admin token, a Content-Digest and a rendition id are required, and the digest must hold', async t => {
  const f = file('v90')
  const noToken = await putRendition(c.url, 'up', 'v90', f.bytes, TOKEN, { token: null })
  t.equal(noToken.status, 401)
  const none = await putRendition(c.url, 'up', 'v90', f.bytes, TOKEN, { digest: false })
  t.equal(none.status, 400)
  t.equal(none.json.error.code, 'CDN_ERR_NO_DIGEST')
  t.match(none.json.error.message, /a rendition upload needs Content-Digest/)
  const before = replicas(c).size
  const wrong = await putRendition(c.url, 'up', 'v90', f.bytes, TOKEN, { digest: 'ab'.repeat(32) })
  t.equal(wrong.status, 400)
  t.equal(wrong.json.error.code, 'CDN_ERR_DIGEST')
  t.match(wrong.json.error.message, /rendition v90 of up: sha256 mismatch, expected abab.*, got [0-9a-f]{64}/)
  t.ok(replicas(c).size >= before, 'what it stored is left for the repairer (an orphan), never published')
  for (const rid of ['V90', 'master', 'a'.repeat(17), 'v90.mp4']) {
    const bad = await putRendition(c.url, 'up', rid, f.bytes, TOKEN)
    t.equal(bad.status, 400, rid)
    t.match(bad.json.error.message, /invalid rendition id .*1-16 characters of \[a-z0-9_-\].*not "master"/)
  }
  const ok = await putRendition(c.url, 'up', 'v90', f.bytes, TOKEN)
  t.equal(ok.status, 200)
  t.match(ok.json, { status: 'stored', rendition: 'v90', size: f.bytes.length, sha256: f.sha256, chunkSize: CS })
  t.same(ok.json, { ...ok.json, ...storedLocally(f.bytes, CS) }, 'version, chunks and blocks as computed from the file')
  const again = await putRendition(c.url, 'up', 'v90', f.bytes, TOKEN)
  t.same(again.json.replicas, { stored: 0, resumed: 3 * ok.json.chunks.length }, 'a re-run sends nothing again')
  await invisible(t, 'up')
})

t.test('a publish body that is not a ladder: 400 naming the rendition and the field', async t => {
  const rs = await upload('body', ladder)
  const named = async (body: unknown, code: string, message: RegExp, status = 400) => {
    const r = await publish(c.url, 'body', body, TOKEN)
    t.equal(r.status, status, String(message))
    t.equal(r.json.error.code, code)
    t.match(r.json.error.message, message)
  }
  await named('{', 'CDN_ERR_BAD_JSON', /not valid JSON/)
  await named({ rungs: rs }, 'CDN_ERR_BAD_LADDER', /expected \{"renditions": \[\.\.\.\]\}.*Unrecognized key/)
  await named({ renditions: [] }, 'CDN_ERR_BAD_LADDER', /1 to 16 renditions, got 0/)
  await named({ renditions: Array.from({ length: 17 }, () => rs[0]) }, 'CDN_ERR_BAD_LADDER', /got 17/)
  await named({ renditions: [rs[0], { ...rs[1], id: 'V90' }] }, 'CDN_ERR_BAD_RENDITION', /rendition "V90" \(renditions\.1\) of body: id: a rendition id is/)
  await named({ renditions: [rs[0], { ...rs[1], id: 'master' }] }, 'CDN_ERR_BAD_RENDITION', /rendition "master" \(renditions\.1\) of body: id:/)
  await named({ renditions: [rs[0], { ...rs[1], id: 'v180' }] }, 'CDN_ERR_BAD_LADDER', /rendition id v180 appears twice/)
  await named({ renditions: [rs[0], { ...rs[1], codecs: 'h264 high' }] }, 'CDN_ERR_BAD_RENDITION', /rendition "v90" \(renditions\.1\) of body: codecs: an RFC 6381 codec string/)
  await named({ renditions: [{ ...rs[0], bandwidth: undefined }] }, 'CDN_ERR_BAD_RENDITION', /rendition "v180" \(renditions\.0\) of body: bandwidth: .*expected number/)
  await named({ renditions: [rs[2]] }, 'CDN_ERR_BAD_LADDER', /at least one video rendition/)
  await named({ renditions: [rs[0], { ...rs[1], version: '0123456789abcdef' }] }, 'CDN_ERR_BAD_RENDITION',
    /rendition "v90" \(renditions\.1\) of body: version 0123456789abcdef is not the one its sha256 gives .*upload its file with PUT \/v1\/content\/body\/renditions\/v90/)
  await named({ renditions: [{ ...rs[0], chunks: rs[0]!.chunks.slice(1), blocks: rs[0]!.blocks.slice(1) }] }, 'CDN_ERR_BAD_RENDITION',
    new RegExp(`rendition "v180" \\(renditions\\.0\\) of body: ${rs[0]!.chunks.length - 1} chunk digests for ${rs[0]!.size} bytes in 65536-byte chunks, expected ${rs[0]!.chunks.length}`))
  const blocks = [...rs[0]!.blocks]
  blocks[1] = 'f'.repeat(64)
  await named({ renditions: [{ ...rs[0], blocks }, rs[1], rs[2]] }, 'CDN_ERR_BAD_RENDITION',
    /rendition v180 chunk 1 \(body\.[0-9a-f]{16}\/1\): the record's block-list digest f{64} is not the stored chunk's/)
  await invisible(t, 'body')
})

t.test('a misaligned ladder: 400 naming the two rungs and where they part', async t => {
  const rs = await upload('misaligned', [file('v180'), file('v90g3'), file('a64')])
  const r = await publish(c.url, 'misaligned', { renditions: rs }, TOKEN)
  t.equal(r.status, 400)
  t.equal(r.json.error.code, 'CDN_ERR_BAD_LADDER')
  t.match(r.json.error.message, /the renditions of misaligned are not one ladder: video renditions v180 and v90g3 have 3 and 2 segments: their keyframes are not aligned/)
  await invisible(t, 'misaligned')
})

t.test('a rendition never uploaded, or a chunk lost from its owners: 409 naming the rendition, the chunk and each owner', async t => {
  const rs = await upload('partial', [file('v180'), file('v90')])
  const never = recordOf(file('a64'), storedLocally(file('a64').bytes, CS))
  const r = await publish(c.url, 'partial', { renditions: [...rs, never] }, TOKEN)
  t.equal(r.status, 409)
  t.equal(r.json.error.code, 'CDN_ERR_RENDITION_MISSING')
  t.match(r.json.error.message, new RegExp(`rendition a64 chunk 0 \\(partial\\.${never.version}/0\\) is not stored: held with its digest by 0 of 3 owners, 3 needed ` +
    '\\(shard-\\d: missing, shard-\\d: missing, shard-\\d: missing\\); upload rendition a64 again \\(PUT /v1/content/partial/renditions/a64\\)'))
  await invisible(t, 'partial')

  // chunk 2 of v180 lost from two of its three owners
  const v = rs[0]!
  const sid = `partial.${v.version}`
  const owners = c.router.cluster.ring.owners(chunkKey(sid, 2))
  for (const o of owners.slice(0, 2)) {
    const res = await request(`http://127.0.0.1:${c.ports[Number(o.split('-')[1]) - 1]}/v1/chunks/${sid}/2`, { method: 'DELETE' })
    t.equal(res.statusCode, 204)
    await res.body.dump()
  }
  const lost = await publish(c.url, 'partial', { renditions: rs }, TOKEN)
  t.equal(lost.status, 409)
  t.match(lost.json.error.message, new RegExp(`rendition v180 chunk 2 \\(${sid}/2\\) is not stored: held with its digest by 1 of 3 owners, 3 needed \\(${owners[0]}: missing, ${owners[1]}: missing, ${owners[2]}: ok\\)`))
  await invisible(t, 'partial')
  // uploading it again puts the chunk back, and the same publish goes through
  t.equal((await putRendition(c.url, 'partial', 'v180', file('v180').bytes, TOKEN)).json.replicas.stored, 2, 'only the two lost copies sent')
  const ok = await publish(c.url, 'partial', { renditions: rs }, TOKEN)
  t.equal(ok.status, 201)
  t.match((await c.get('/metrics')).body.toString(), /reelcdn_router_adaptive_publishes_total\{result="missing",service="router"\} [1-9]/)
})

t.test('an owner that does not answer: 503, retryable, naming the chunk; nothing published', async t => {
  const rs = await upload('down', ladder)
  await c.stopShard(1)
  const r = await publish(c.url, 'down', { renditions: rs }, TOKEN)
  t.equal(r.status, 503)
  t.equal(r.json.error.code, 'CDN_ERR_NO_REPLICA')
  t.match(r.json.error.message, /rendition (a64|v180|v90) chunk \d+ \(down\.[0-9a-f]{16}\/\d+\): held with its digest by 2 of 3 owners, 3 needed \(.*shard-2: no answer \(CDN_ERR_UPSTREAM\)/)
  await c.startShard(1)
  await invisible(t, 'down')
  t.equal((await publish(c.url, 'down', { renditions: rs }, TOKEN)).status, 201, 'once it is back, the same publish goes through')
})

t.test('a body or a manifest past origin.maxManifestBytes (what shards take): 413, with the limit', async t => {
  const rs = ladder.map(f => recordOf(f, storedLocally(f.bytes, CS)))
  const body = JSON.stringify({ renditions: rs })
  // room for the body, not for the manifest it makes (the title's metadata on top)
  const limit = body.length + 16
  const small = await TestCluster.start(t, { chunkSize: CS, overrides: { 'origin.maxManifestBytes': limit } })
  for (const f of ladder) t.equal((await putRendition(small.url, 'big', f.id, f.bytes, TOKEN)).status, 200)
  const r = await publish(small.url, 'big', body, TOKEN)
  t.equal(r.status, 413)
  t.equal(r.json.error.code, 'CDN_ERR_TOO_LARGE')
  t.match(r.json.error.message, new RegExp(`the manifest of big would be \\d+ bytes, more than the shards take \\(origin\\.maxManifestBytes, ${limit}\\)`))
  const padded = await publish(small.url, 'big', body + ' '.repeat(100), TOKEN)
  t.equal(padded.status, 413)
  t.match(padded.json.error.message, new RegExp(`request body of ${body.length + 100} bytes exceeds the limit of ${limit}`))
  const res = await request(`${small.url}/v1/content/big`, { method: 'PUT', body: JSON.stringify({ renditions: [rs[2]] }),
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `${ADAPTIVE_TYPE}; charset=utf-8` } })
  t.equal(res.statusCode, 400, 'the type with a parameter is still a publish: checked as a ladder (here: no video)')
  await res.body.dump()
  t.equal((await small.get('/v1/content/big/meta')).status, 404)
})
