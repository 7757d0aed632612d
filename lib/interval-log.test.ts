import t from 'tap'
import { IntervalLog } from './interval-log.js'

t.test('the first occurrence in each interval is logged, with how many were left out since the last', async t => {
  let now = 0
  const log = new IntervalLog(60_000, () => now)
  t.same(log.take(), { skipped: 0 })
  now = 1000
  t.equal(log.take(), undefined)
  now = 59_999
  t.equal(log.take(), undefined)
  now = 60_000
  t.same(log.take(), { skipped: 2 })
  now = 200_000
  t.same(log.take(), { skipped: 0 })
})
