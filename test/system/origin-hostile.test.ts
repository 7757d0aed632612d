import t from 'tap'
import { hostileBattery } from '../helpers/hostile.js'
import { putChunk, randomChunk, startTestOrigin } from '../helpers/origin.js'

t.test('the origin shard answers the hostile-input battery and stays up', async t => {
  const headersTimeoutMs = 500
  const o = await startTestOrigin(t, { 'http.headersTimeoutMs': headersTimeoutMs, 'origin.maxManifestBytes': 4096 })
  await putChunk(o.url, 'good', 0, randomChunk(100_000))
  await hostileBattery(t, {
    base: o.url, good: '/v1/chunks/good/0', bytes: '/v1/chunks/good/0', headersTimeoutMs,
    idPath: id => `/v1/chunks/${id}/0`, jsonPut: { path: '/v1/manifests/good', maxBytes: 4096 },
  })
})
