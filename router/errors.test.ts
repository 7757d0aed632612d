import t from 'tap'
import { operatorMustAct } from '../lib/http/http.js'
import { shardRefusal } from './errors.js'

/**
 * A shard's 507 as the router rebuilds it. A shard refuses a chunk for the
 * moment when uploads in flight hold the space above its reserve (origin/server.ts):
 * it logs that at info (the clients' timing) and says so with a Retry-After.
 * The router kept only the status, so each such ingest was logged at level 50
 * with a stack, as a full disk is (from a read-only audit, stop 41).
 */
const body = JSON.stringify({ error: { code: 'CDN_ERR_NO_SPACE', message: 'storing x would leave less than the reserve' } })

t.test('a 507 with a Retry-After is the uploads\' timing; without, a full disk', async t => {
  const timing = shardRefusal('shard-2', 'PUT chunk', 507, body, { 'retry-after': '1' })
  t.match(timing, { statusCode: 507, code: 'CDN_ERR_NO_SPACE', retryable: true, source: 'client' })
  t.equal(operatorMustAct(timing), false, 'not at level 50')
  const full = shardRefusal('shard-2', 'PUT chunk', 507, body)
  t.match(full, { statusCode: 507, source: 'storage', message: /shard-2 is full/ })
  t.equal(operatorMustAct(full), true, 'a full disk is for an operator')
})
