import t from 'tap'
import { Ring } from './ring.js'
import { chunkKey, manifestKey, storageId, versionFromDigest } from './keys.js'

/**
 * Placement snapshot. If this test fails, a change moved data: every
 * cluster would have to rebalance. Change it only on purpose, with a note.
 */
const four = [{ id: 'shard-1', weight: 1 }, { id: 'shard-2', weight: 1 }, { id: 'shard-3', weight: 1 }, { id: 'shard-4', weight: 2 }]

t.test('placement snapshot: keys and their owners never change silently', async t => {
  const r = new Ring(four, 3, 160)
  const sid = storageId('movie-1', versionFromDigest('a'.repeat(64), 64 * 1024 ** 2))
  t.equal(sid, 'movie-1.7f0a9b831bf6a280', 'storage id of a title version')
  const snapshot: [string, string[]][] = [
    [chunkKey(sid, 0), ['shard-3', 'shard-4', 'shard-2']],
    [chunkKey('movie-1.0123456789abcdef', 1), ['shard-4', 'shard-3', 'shard-2']],
    [chunkKey('movie-1.0123456789abcdef', 2), ['shard-4', 'shard-3', 'shard-1']],
    [manifestKey('movie-1'), ['shard-2', 'shard-1', 'shard-3']],
    [manifestKey('Été'), ['shard-4', 'shard-2', 'shard-1']],
    [chunkKey('x.ffffffffffffffff', 4294967295), ['shard-3', 'shard-4', 'shard-1']],
  ]
  t.equal(snapshot[0]![0], 'c/movie-1.7f0a9b831bf6a280/0')
  t.equal(snapshot[3]![0], 'm/movie-1')
  for (const [key, owners] of snapshot) t.same(r.owners(key), owners, key)
  t.same(r.points(), { 'shard-1': 128, 'shard-2': 128, 'shard-3': 128, 'shard-4': 256 }, 'points follow weights')
})

t.test('owners are `copies` distinct shards, and the ring order starts with them', async t => {
  const r = new Ring(four, 3, 160)
  const bad: string[] = []
  for (let i = 0; i < 200; i++) {
    const k = chunkKey('m.0000000000000000', i)
    const o = r.owners(k)
    const order = r.order(k)
    if (new Set(o).size !== 3 || order.length !== 4 || order.slice(0, 3).join() !== o.join()) bad.push(k)
  }
  t.same(bad, [])
})

t.test('a key\'s kept order is the walk\'s, the same array each time, and frozen against callers', async t => {
  const r = new Ring(four, 3, 160)
  const k = chunkKey('m.0000000000000000', 7)
  const first = r.order(k)
  t.same(first, new Ring(four, 3, 160).order(k), 'what a fresh ring walks')
  t.equal(r.order(k), first, 'asked again: kept, not walked again')
  t.throws(() => { (first as string[]).reverse() }, TypeError, 'a caller cannot reorder it for the next read')
  t.same(r.order(k), new Ring(four, 3, 160).order(k))
  const owners = r.owners(k)
  t.same(owners, first.slice(0, 3), 'owners from the kept order: its first `copies`')
  owners.pop()
  t.same(r.owners(k), first.slice(0, 3), 'a copy the caller may change')
})

t.test('shares follow weights', async t => {
  const r = new Ring(four, 1, 160)
  const n: Record<string, number> = {}
  for (let i = 0; i < 20000; i++) { const o = r.owners(`c/w.0000000000000000/${i}`)[0]!; n[o] = (n[o] ?? 0) + 1 }
  const unit = 20000 / 5
  for (const id of ['shard-1', 'shard-2', 'shard-3']) t.ok(Math.abs(n[id]! / unit - 1) < 0.2, `${id} holds ${n[id]} of ~${unit}`)
  t.ok(Math.abs(n['shard-4']! / (2 * unit) - 1) < 0.2, `the weight-2 shard holds ${n['shard-4']} of ~${2 * unit}`)
})

t.test('adding a fourth shard to three moves about a quarter of replicas, one per key at most', async t => {
  const eq = (k: number) => Array.from({ length: k }, (_, i) => ({ id: `shard-${i + 1}`, weight: 1 }))
  const before = new Ring(eq(3), 3, 160)
  const after = new Ring(eq(4), 3, 160)
  let moved = 0
  const keys = 20000
  for (let i = 0; i < keys; i++) {
    const k = chunkKey('r.0000000000000000', i)
    const gone = before.owners(k).filter(s => !after.owners(k).includes(s))
    if (gone.length > 1) t.fail(`${k} lost ${gone.length} owners`)
    moved += gone.length
  }
  const frac = moved / (3 * keys)
  t.ok(frac > 0.25 / 1.25 && frac < 0.25 * 1.25, `moved ${frac.toFixed(4)} of replicas (ideal 0.25)`)
})

t.test('a ring refuses more copies than shards', async t => {
  t.throws(() => new Ring(four.slice(0, 2), 3, 160), /expected cluster\.copies to be at most the number of shards \(2\), got 3/)
  t.throws(() => new Ring(four, 3, 10), /multiple of 4/)
})
