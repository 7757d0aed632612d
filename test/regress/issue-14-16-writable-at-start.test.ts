import t from 'tap'
import { chmodSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { own, refused, runUntilReady } from '../helpers/start-refused.js'
import { ChunkIndex } from '../../origin/chunk-index.js'
import { DiskIndex } from '../../edge/tiers/disk-index.js'
import { Trending } from '../../router/playback/trending.js'

/**
 * Issue 14, item 16: a read-only index.sqlite was found only when the scrubber
 * first wrote (a level-50 log line with a stack, after "ready"). Every service
 * checks at start that its data dir and its databases take writes, and refuses
 * to start otherwise: one line naming the path, a non-zero exit, no stack
 * (test/helpers/start-refused.ts runs them, as `nobody` when root).
 */
interface Service { name: string; args: (dir: string) => string[]; ready: string; db: string; create(file: string): void }

const services: Service[] = [
  { name: 'origin', args: d => ['origin', '--port', '0', '--data-dir', d, '--reserve', '0'], ready: 'origin shard ready',
    db: 'index.sqlite', create: f => new ChunkIndex(f).close() },
  { name: 'edge', args: d => ['edge', '--port', '0', '--data-dir', d, '--upstream', 'http://127.0.0.1:9', '--prefill-window', 'never'], ready: 'edge ready',
    db: 'index.sqlite', create: f => new DiskIndex(f).close() },
  { name: 'router', args: d => ['router', '--port', '0', '--data-dir', d, '--repair-interval', '0'], ready: 'router ready',
    db: 'trending.sqlite', create: f => new Trending(f, 'router-test').close(Date.now()) },
]

function dataDir(t: Test): string {
  const dir = join(t.testdir(), 'data')
  mkdirSync(dir)
  return dir
}

for (const s of services) {
  t.test(`${s.name}: a read-only ${s.db} stops the start`, async t => {
    const dir = dataDir(t)
    s.create(join(dir, s.db))
    own(dir)
    chmodSync(join(dir, s.db), 0o444)
    refused(t, await runUntilReady(s.args(dir), s.ready), join(dir, s.db))
  })

  t.test(`${s.name}: a read-only data dir stops the start`, async t => {
    const dir = dataDir(t)
    own(dir)
    chmodSync(dir, 0o555)
    try {
      refused(t, await runUntilReady(s.args(dir), s.ready), dir)
    } finally {
      chmodSync(dir, 0o755)
    }
  })
}
