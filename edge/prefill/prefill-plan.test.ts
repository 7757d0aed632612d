import t from 'tap'
import { parseFillWindow } from './fill-window.js'
import { chunkValue, OPENING_PRIOR, planPrefill, renditionShares, SLICES, type TitleDemand } from './prefill-plan.js'

const MiB = 1024 * 1024
const title = (contentId: string, plays: number, chunks: number, positions: number[] | null = null): TitleDemand =>
  ({ contentId, plays, positions, chunkSize: 64 * MiB, size: chunks * 64 * MiB - 1000 })

t.test('openings of many titles come before the endings of a few', async t => {
  const titles = [title('hit', 100, 40), ...Array.from({ length: 10 }, (_, i) => title(`mid${i}`, 30, 40))]
  const plan = planPrefill(titles, () => false, 30 * 64 * MiB)
  const openings = new Set(plan.filter(c => c.index === 0).map(c => c.contentId))
  t.equal(openings.size, 11, 'every title\'s opening is in the plan')
  const lastOfHit = Math.max(...plan.filter(c => c.contentId === 'hit').map(c => c.index))
  t.ok(lastOfHit < 39, `the hit's ending is not (its last planned chunk is ${lastOfHit})`)
  t.ok(plan.findIndex(c => c.contentId === 'mid9' && c.index === 0) < plan.findIndex(c => c.contentId === 'hit' && c.index === 39) ||
    !plan.some(c => c.contentId === 'hit' && c.index === 39))
})

t.test('the plan respects the byte budget, skips cached chunks, and follows reported positions', async t => {
  const plan = planPrefill([title('a', 10, 5)], (_id, i) => i === 0, 2 * 64 * MiB)
  t.same(plan.map(c => c.index), [1, 2], 'chunk 0 cached; two chunks fit')
  t.ok(plan.reduce((s, c) => s + c.bytes, 0) <= 2 * 64 * MiB)
  const endings = Array.from({ length: SLICES }, (_, i) => (i === SLICES - 1 ? 1 : 0))
  const credits = planPrefill([title('b', 10, 20, endings)], () => false, 64 * MiB)
  t.same(credits.map(c => c.index), [19], 'a title watched at its end gets its end prefilled')
  t.equal(planPrefill([title('c', 0, 5)], () => false, 1e12).length, 0, 'no plays, no prefill')
  t.ok(Math.abs(OPENING_PRIOR.reduce((a, b) => a + b, 0) - 1) < 1e-9)
})

t.test('fill windows, wrapping midnight included', async t => {
  const w = parseFillWindow('02:00-14:00')
  t.ok(w.contains(new Date(2026, 0, 1, 2, 0)))
  t.notOk(w.contains(new Date(2026, 0, 1, 14, 0)))
  t.equal(w.start(new Date(2026, 0, 1, 9, 30)), new Date(2026, 0, 1, 2, 0).getTime())
  const night = parseFillWindow('22:00-06:00')
  t.ok(night.contains(new Date(2026, 0, 1, 23, 0)))
  t.ok(night.contains(new Date(2026, 0, 2, 5, 59)))
  t.notOk(night.contains(new Date(2026, 0, 2, 12, 0)))
  t.equal(night.start(new Date(2026, 0, 2, 3, 0)), new Date(2026, 0, 1, 22, 0).getTime(), 'began yesterday')
  t.ok(parseFillWindow('always').contains(new Date()))
  t.notOk(parseFillWindow('never').contains(new Date()))
  for (const bad of ['25:00-01:00', '02:00', '02:00-02:00', 'soon', '2:00-3:00']) t.throws(() => parseFillWindow(bad), /fill window/, bad)
})

t.test('chunkValue gives each chunk the value the plan ranks it by', async t => {
  const titles = [
    { contentId: 'a', plays: 7, positions: null, chunkSize: 10, size: 95 },
    { contentId: 'b', plays: 3, positions: Array.from({ length: 20 }, (_, i) => (i === 19 ? 1 : 0)), chunkSize: 10, size: 400 },
  ]
  const plan = planPrefill(titles, () => false, Infinity)
  for (const c of plan) t.equal(chunkValue(titles.find(x => x.contentId === c.contentId)!, c.index), c.value, `${c.contentId}/${c.index}`)
  t.equal(chunkValue(titles[1]!, 0), 0)
  t.equal(chunkValue(titles[0]!, 99), 0, 'out of range')
})

t.test('an adaptive title plans the rungs its viewers watch, by their share of reads', async t => {
  const ladder: TitleDemand = {
    contentId: 'abr', plays: 10, positions: null, chunkSize: 64 * MiB, size: 0,
    files: [
      { rid: 'v1080', share: 0, positions: null, size: 20 * 64 * MiB },
      { rid: 'v720', share: 0.7, positions: null, size: 12 * 64 * MiB },
      { rid: 'v360', share: 0.2, positions: null, size: 4 * 64 * MiB },
      { rid: 'a128', share: 0.1, positions: null, size: 64 * MiB },
    ],
  }
  const plan = planPrefill([ladder], () => false, 1e15)
  t.notOk(plan.some(c => c.rid === 'v1080'), 'a rung nobody watches is not planned')
  t.same([...new Set(plan.map(c => c.rid))].sort(), ['a128', 'v360', 'v720'])
  t.equal(plan[0]!.rid, 'v720', 'the most watched rung\'s opening first')
  t.equal(plan.find(c => c.rid === 'v720' && c.index === 0)!.value,
    0.7 * planPrefill([{ ...ladder, files: undefined, size: 12 * 64 * MiB }], () => false, 1e15)[0]!.value,
    'a rung\'s chunk is worth a single file\'s at its place, times the rung\'s share')
  t.equal(chunkValue(ladder, 0, 'v720'), plan.find(c => c.rid === 'v720' && c.index === 0)!.value, 'chunkValue agrees with the plan')
  t.equal(chunkValue(ladder, 0, 'v1080'), 0)
  t.equal(chunkValue(ladder, 0), 0, 'an adaptive title\'s own file has nothing')
  const skip = planPrefill([ladder], (_id, i, rid) => rid === 'v720' && i === 0, 1e15)
  t.notOk(skip.some(c => c.rid === 'v720' && c.index === 0), 'a cached rendition chunk is skipped')
  t.same(renditionShares(['a', 'b'], new Map([['a', 3], ['b', 1]])), new Map([['a', 0.75], ['b', 0.25]]))
  t.same(renditionShares(['a', 'b'], new Map()), new Map([['a', 0.5], ['b', 0.5]]), 'no counts: the even prior')
})
