import t from 'tap'
import { TestCluster, TOKEN, randomBody } from '../system/harness.js'
import { putRendition } from '../helpers/abr.js'
import { chunkKey } from '../../router/cluster/keys.js'

/**
 * From a read-only audit (stop 41): a shard answers a HEAD of a chunk it
 * marked corrupt with 500 and, as every HEAD answer, no body, so the error's
 * code never reached the router: an upload asking whether an owner already
 * held the chunk took the corrupt copy for a shard failure, retried and
 * failed 502, where a PUT would have replaced the copy (as the repairer's
 * does). Error answers now carry their code in a header too.
 */
const CS = 64 * 1024

t.test('the same rendition uploaded again replaces an owner\'s corrupt copy', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const bytes = randomBody(2 * CS)
  const first = await putRendition(c.url, 'abr', 'v1', bytes, TOKEN)
  t.equal(first.status, 200)
  const sid = `abr.${first.json.version}`
  const owner = c.router.cluster.owners(chunkKey(sid, 0))[0]!
  // the harness names shard i+1 'shard-<i+1>'
  const shard = c.shards[Number(owner.id.replace('shard-', '')) - 1]!
  shard.index.setState(sid, 0, 'corrupt')
  const again = await putRendition(c.url, 'abr', 'v1', bytes, TOKEN)
  t.equal(again.status, 200, `stored again: ${JSON.stringify(again.json?.error ?? '')}`)
  t.ok(again.json.replicas.stored >= 1, 'the corrupt copy was replaced')
  t.equal(shard.index.get(sid, 0)?.state, 'ok', 'and is whole on its shard')
})
