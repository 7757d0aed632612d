import t from 'tap'
import { hostileBattery } from '../helpers/hostile.js'
import { putChunk, randomChunk, startTestOrigin } from '../helpers/origin.js'

t.test('the origin shard answers the hostile-input battery and stays up', async t => {
  // short timeouts so the slowloris, idle, kept-alive and stalled-body cases are cut by them within the test;
  // maxRanges off its default so the range cases prove the setting is the one applied
  const limits = { headersTimeoutMs: 500, requestTimeoutMs: 1500, keepAliveTimeoutMs: 300, maxRanges: 5 }
  const o = await startTestOrigin(t, {
    'http.headersTimeoutMs': limits.headersTimeoutMs, 'http.requestTimeoutMs': limits.requestTimeoutMs,
    'http.keepAliveTimeoutMs': limits.keepAliveTimeoutMs, 'http.maxRanges': limits.maxRanges, 'origin.maxManifestBytes': 4096,
  })
  await putChunk(o.url, 'good', 0, randomChunk(100_000))
  await hostileBattery(t, {
    base: o.url, good: '/v1/chunks/good/0', bytes: '/v1/chunks/good/0', ...limits,
    idPath: id => `/v1/chunks/${id}/0`, jsonBody: { path: '/v1/manifests/good', maxBytes: 4096 },
  })
})
