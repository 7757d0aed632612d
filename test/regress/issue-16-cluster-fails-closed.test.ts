import t from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { startCluster } from '../../tools/cluster.js'
import { localClusterConfig } from '../helpers/local-cluster.js'
import { until } from '../helpers/edge.js'

/**
 * From a read-only audit (stop 41): `reelcdn cluster` whose cluster.json
 * could not be written (a directory of that name, a read-only file) printed
 * the error and never exited: its shards, router and edge, already started,
 * went on listening, and a script waiting on it hung. What started is closed
 * and the error names the file.
 */
const servers = () => process.getActiveResourcesInfo().filter(r => r === 'TCPServerWrap').length

t.test('a cluster whose config file cannot be written closes what it started', async t => {
  const dir = t.testdir()
  mkdirSync(join(dir, 'cluster.json'))
  const before = servers()
  await t.rejects(startCluster(localClusterConfig(dir), {}, { sample: false }), /cluster\.json/)
  // a server's handle goes at the close's next turn
  await until(() => servers() === before, `no member left listening (${process.getActiveResourcesInfo().join(', ')})`, 5000)
  t.pass('no member is left listening')
})
