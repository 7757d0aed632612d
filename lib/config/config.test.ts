import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { envName, loadConfig } from './config.js'

t.test('defaults load, validate and are frozen', async t => {
  const c = loadConfig({ env: {} })
  t.equal(c.cluster.chunkSize, 64 * 1024 ** 2)
  t.ok(Object.isFrozen(c.origin))
})

t.test('layers: file < env < flags', async t => {
  const dir = t.testdir()
  const file = join(dir, 'c.json')
  writeFileSync(file, JSON.stringify({ origin: { port: 1, host: '127.0.0.2' } }))
  const c = loadConfig({ file, env: { REELCDN_ORIGIN_PORT: '2', REELCDN_ORIGIN_DATA_DIR: '/x' }, overrides: { 'origin.host': '::1' } })
  t.equal(c.origin.port, 2)
  t.equal(c.origin.dataDir, '/x')
  t.equal(c.origin.host, '::1')
  t.equal(envName('http.maxHeaderBytes'), 'REELCDN_HTTP_MAX_HEADER_BYTES')
})

t.test('a bad setting is refused by name, value and expectation', async t => {
  t.throws(() => loadConfig({ env: { REELCDN_ORIGIN_PORT: 'abc' } }), /expected origin\.port to be a number, got "abc"/)
  t.throws(() => loadConfig({ env: {}, overrides: { 'origin.port': 70000 } }), /origin\.port.*got 70000/)
  t.throws(() => loadConfig({ env: {}, overrides: { 'cluster.chunkSize': 1000 } }), /cluster\.chunkSize.*got 1000/)
  t.throws(() => loadConfig({ env: {}, overrides: { 'origin.nope': 1 } }), /unknown setting origin\.nope/)
  t.throws(() => loadConfig({ env: {}, overrides: { 'edge.diskWriteQueue': 4 } }), /edge\.diskWriteQueue was replaced by edge\.diskWriteQueueBytes/,
    'a renamed setting names its replacement')
  const dir = t.testdir({ 'bad.json': '{ nope' })
  t.throws(() => loadConfig({ file: join(dir, 'bad.json'), env: {} }), /not valid JSON/)
})
