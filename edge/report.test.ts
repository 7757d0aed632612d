import t from 'tap'
import { analyse } from './report.js'
import type { LoggedRead } from './serve/request-log.js'

/**
 * The report's optimum counts bytes. Three chunks, the last one short
 * (10 + 10 + 4 bytes), read in turn by players, with a 24-byte tier: all
 * three fit, so after the first round every read hits. MIN counted in
 * typical-size chunks (room for two) would miss a third of them and rank
 * below LRU; MIN in bytes keeps all three, and no policy beats it.
 */
t.test('with a short last chunk, MIN in bytes is still the best any policy does', async t => {
  const reads: LoggedRead[] = []
  for (let round = 0; round < 20; round++) for (const [i, b] of [[0, 10], [1, 10], [2, 4]] as const)
    reads.push({ t: reads.length * 1000, key: `movie/${i}/d`, chunkBytes: b, bytes: b, result: 'miss', session: `v${round}` })
  const r = analyse(reads, 24, { sessionHorizon: 4, sessionIdleMs: 60_000 })
  t.equal(r.ratios.min!.byteHitRatio, (reads.length - 3) / reads.length * 1, 'MIN misses only the first round')
  t.equal(r.ratios.lru!.ofOptimum, 1, 'LRU, holding all three, is optimal here')
  for (const [p, v] of Object.entries(r.ratios)) t.ok(v.ofOptimum <= 1 + 1e-9, `${p} ${v.ofOptimum.toFixed(3)} of MIN`)
  t.equal(r.partialReads, 0)
})

t.test('reads of part of a chunk are counted, since MIN is then an estimate', async t => {
  const reads: LoggedRead[] = [0, 1, 0, 1].map((i, n) => ({ t: n, key: `m/${i}/d`, chunkBytes: 10, bytes: n === 3 ? 5 : 10, result: 'miss', session: 's' }))
  const r = analyse(reads, 20, { sessionHorizon: 4, sessionIdleMs: 60_000 })
  t.equal(r.partialReads, 0.25)
  t.equal(r.ratios.min!.byteHitRatio, 15 / 35)
})
