import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { CONTENT_ID_RULE, isContentId, parseContentId } from '../../lib/ids.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { startTestEdge } from '../helpers/edge.js'
import { TestCluster } from '../system/harness.js'
import { CLI } from '../helpers/spawn.js'

/**
 * Issue 14, item 15: the edge took content ids the router refuses (112 to 128
 * characters, or ending in a dot), asked the router, and answered 502. One
 * rule (lib/ids.ts parseContentId) now holds for every service and tool that
 * takes a title's id: 400 naming the rule, before any upstream request. Shards
 * keep their own, longer names (`<contentId>.<version>`, lib/ids.ts parseShardKey).
 */
const tooLong = 'a'.repeat(112)
const longest = 'a'.repeat(111)
const BAD = [tooLong, 'movie.', 'a'.repeat(128)]

t.test('one rule: 1-111 characters, not ending in a dot', async t => {
  t.ok(isContentId(longest))
  for (const bad of BAD) {
    t.notOk(isContentId(bad), bad)
    t.throws(() => parseContentId(bad), { code: 'CDN_ERR_INVALID_ID', statusCode: 400, message: `invalid contentId: ${CONTENT_ID_RULE}` })
  }
  t.match(CONTENT_ID_RULE, /1-111 characters/)
})

async function answer(url: string) {
  const res = await request(url)
  const text = await res.body.text()
  let json: { error?: { code?: string; message?: string } } = {}
  try { json = JSON.parse(text) } catch { /* a body of bytes: the title was served */ }
  return { status: res.statusCode, json }
}

for (const threads of [0, 1]) {
  t.test(`the edge${threads ? ' (with a serve thread)' : ''} answers 400 with the rule, without asking its upstream`, async t => {
    const up = await FakeUpstream.start()
    t.teardown(() => up.close())
    for (const id of BAD) await up.addTitle(id, Buffer.alloc(1000, 1), { chunkSize: 65536 })
    const edge = await startTestEdge(t, up, { 'edge.serveThreads': threads })
    for (const id of BAD) {
      const r = await answer(`${edge.url}/v1/content/${id}`)
      t.equal(r.status, 400, `${id.length} characters: ${id.slice(-8)}`)
      t.equal(r.json.error?.code, 'CDN_ERR_INVALID_ID')
      t.equal(r.json.error?.message, `invalid contentId: ${CONTENT_ID_RULE}`)
    }
    t.same(up.metaLog, [], 'the upstream was never asked')
    t.same(up.log, [])
  })
}

t.test('the router gives the same answer, and the ingest CLI refuses the same ids before reading the file', async t => {
  const c = await TestCluster.start(t, { shards: 1, copies: 1 })
  for (const id of BAD) {
    const r = await answer(`${c.url}/v1/content/${id}`)
    t.equal(r.status, 400)
    t.equal(r.json.error?.message, `invalid contentId: ${CONTENT_ID_RULE}`)
  }
  const file = join(t.testdir(), 'x.bin')
  writeFileSync(file, 'x')
  const out = await new Promise<string>(resolve => execFile(process.execPath, [CLI, 'ingest', file, '--id', tooLong, '--router', c.url],
    { env: { ...process.env, REELCDN_ROUTER_TOKEN: 'x' } }, (_err, _stdout, stderr) => resolve(stderr)))
  t.match(out, `invalid contentId: ${CONTENT_ID_RULE}`)
})
