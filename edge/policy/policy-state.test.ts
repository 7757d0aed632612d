import t from 'tap'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { edgeMetrics, newRegistry } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { DiskIndex } from '../tiers/disk-index.js'
import { DiskTier } from '../tiers/disk-tier.js'
import { recoverDisk } from '../tiers/disk-recovery.js'
import { createPolicy, type PolicyName } from './policy.js'
import type { S3FifoPolicy } from './s3fifo-policy.js'
import { chunkKey, type ChunkRef } from '../title.js'
import type { WTinyLfuPolicy } from './wtinylfu-policy.js'

/**
 * Policy state survives a restart: the disk tier saves its policy's queues
 * (and W-TinyLFU's frequency sketch) in the SQLite index at close, and the
 * next start restores them for the files that are still there, instead of
 * rebuilding plain recency from access times.
 */
const CHUNK = 4096

function chunk(index: number): { ref: ChunkRef; buf: Buffer } {
  const buf = Buffer.alloc(CHUNK, index + 1)
  const sha256 = createHash('sha256').update(buf).digest('hex')
  return { ref: { key: chunkKey('movie', index, sha256), contentId: 'movie', index, sha256, size: CHUNK }, buf }
}

function open(dir: string, policy: PolicyName, chunks: number) {
  const index = new DiskIndex(join(dir, 'index.sqlite'))
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0 })
  const tier = new DiskTier(dir, createPolicy(policy, chunks * CHUNK, { typicalBytes: CHUNK }), index, metrics, quietLogger('edge'),
    { readSize: 65536, writeQueueBytes: 64 * CHUNK, accessFlushMs: 60000, openFiles: 4, policyStateFlushMs: 0 })
  return { tier, index }
}

/** Writes chunks 0-19 into a 10-chunk tier, with chunks 0-3 read often: a workload where frequency matters. */
async function workload(tier: DiskTier): Promise<ReturnType<typeof chunk>[]> {
  const cs = Array.from({ length: 20 }, (_, i) => chunk(i))
  for (let i = 0; i < cs.length; i++) {
    // players read through the reader, which tells session-aware policies who read what
    tier.policy.observe?.('viewer', 'movie', i, i * 1000)
    if (!tier.has(cs[i]!.ref.key)) tier.get(cs[i]!.ref.key) // a miss, as the reader records it
    tier.write(cs[i]!.ref, cs[i]!.buf)
    await tier.idle()
    for (let h = 0; h < 4; h++) {
      tier.policy.observe?.(`v${i}-${h}`, 'movie', h, i * 1000 + h)
      if (tier.has(cs[h]!.ref.key)) tier.get(cs[h]!.ref.key)
    }
  }
  return cs
}

for (const name of ['lru', 's3fifo', 'wtinylfu', 'session', 'predictive'] as const) {
  const what = name === 'wtinylfu' ? 'queues and the frequency sketch' : name === 'predictive' ? 'keys, title popularity and the survival curve' : 'queues'
  t.test(`${name}: ${what} are the same after a restart`, async t => {
    const dir = t.testdir()
    const first = open(dir, name, 10)
    await recoverDisk(first.tier, quietLogger('edge'))
    const cs = await workload(first.tier)
    const before = first.tier.policy.snapshot!()
    const held = cs.filter(c => first.tier.has(c.ref.key)).map(c => c.ref.key)
    await first.tier.close()
    first.index.close()

    const again = open(dir, name, 10)
    t.teardown(async () => { await again.tier.close(); again.index.close() })
    const report = await recoverDisk(again.tier, quietLogger('edge'))
    t.equal(report.policy_restored, 1, 'the saved state was used')
    t.equal(report.loaded, held.length)
    t.same(again.tier.policy.snapshot!(), before, 'same queues, same order, same counters')
    if (name === 'predictive') t.ok((before.starts as unknown[]).length > 0, 'the policy had learned which titles are started')
    if (name === 'wtinylfu') {
      const sketch = (again.tier.policy as WTinyLfuPolicy).sketch
      t.ok(sketch.frequency(cs[0]!.ref.key) >= 4, 'the hot chunk is still known to be hot')
    }
    // and it evicts as the uninterrupted policy would: replay the same next insert on a copy that never restarted
    const twin = createPolicy(name, 10 * CHUNK, { typicalBytes: CHUNK })
    twin.restore!(before, k => (held.includes(k) ? CHUNK : undefined))
    const next = chunk(99)
    t.same(again.tier.policy.insert(next.ref.key, CHUNK), twin.insert(next.ref.key, CHUNK), 'the next eviction is the same')
  })
}

t.test('after a restart the chunks S3-FIFO learned are hot are still in its main queue, not back in the small FIFO', async t => {
  const dir = t.testdir()
  const first = open(dir, 's3fifo', 10)
  await recoverDisk(first.tier, quietLogger('edge'))
  const cs = await workload(first.tier)
  await first.tier.close()
  first.index.close()
  const again = open(dir, 's3fifo', 10)
  t.teardown(async () => { await again.tier.close(); again.index.close() })
  await recoverDisk(again.tier, quietLogger('edge'))
  const main = (again.tier.policy as S3FifoPolicy).state().main.map(e => e[0])
  for (let h = 0; h < 4; h++) t.ok(main.includes(cs[h]!.ref.key), `hot chunk ${h} is in the main queue`)
})

t.test('chunks written after the last save are adopted; a snapshot of another policy is refused and recency is rebuilt', async t => {
  const dir = t.testdir()
  const first = open(dir, 's3fifo', 10)
  await recoverDisk(first.tier, quietLogger('edge'))
  const cs = Array.from({ length: 6 }, (_, i) => chunk(i))
  for (const c of cs.slice(0, 3)) first.tier.write(c.ref, c.buf)
  await first.tier.idle()
  first.tier.savePolicyState() // a periodic save, then more writes, then a crash (no close)
  for (const c of cs.slice(3)) first.tier.write(c.ref, c.buf)
  await first.tier.idle()
  first.tier.flushAccess()
  first.index.close()

  const again = open(dir, 's3fifo', 10)
  const report = await recoverDisk(again.tier, quietLogger('edge'))
  t.equal(report.policy_restored, 1)
  t.equal(report.loaded, 6, 'the three written after the save are adopted too')
  t.same((again.tier.policy as S3FifoPolicy).state().small.map(e => e[0]), cs.map(c => c.ref.key), 'saved ones first, later ones after')
  await again.tier.close()
  again.index.close()

  const other = open(dir, 'wtinylfu', 10)
  t.teardown(async () => { await other.tier.close(); other.index.close() })
  const r2 = await recoverDisk(other.tier, quietLogger('edge'))
  t.equal(r2.policy_restored, 0, 'an S3-FIFO snapshot means nothing to W-TinyLFU')
  t.equal(r2.loaded, 6)
})

t.test('a snapshot that no longer fits (the tier was made smaller) is refused, and the tier still loads what fits', async t => {
  const dir = t.testdir()
  const first = open(dir, 'wtinylfu', 10)
  await recoverDisk(first.tier, quietLogger('edge'))
  await workload(first.tier)
  await first.tier.close()
  first.index.close()
  const small = open(dir, 'wtinylfu', 4)
  t.teardown(async () => { await small.tier.close(); small.index.close() })
  const r = await recoverDisk(small.tier, quietLogger('edge'))
  t.equal(r.policy_restored, 0)
  t.ok(small.tier.stats().bytes <= 4 * CHUNK)
})
