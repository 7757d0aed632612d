import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { quietLogger } from '../../lib/logger.js'
import { logFiles, parseRequestLog, RequestLog, type LoggedRead } from './request-log.js'

t.test('the request log rotates at its size, keeps a bounded number of files, and reads back oldest first', async t => {
  const dir = t.testdir()
  const log = new RequestLog(dir, 200, 2, quietLogger('edge'))
  for (let i = 0; i < 40; i++) {
    log.record(i, `movie/${i}/abc`, 1000, 10, 'miss', i === 3 ? 'tab\there' : 's')
    if (i % 4 === 3) await log.flush()
  }
  await log.close()
  t.ok(readdirSync(dir).length <= 3, 'the current file and two rotated ones at most')
  const reads: LoggedRead[] = []
  for (const f of await logFiles(dir)) t.equal(parseRequestLog(readFileSync(f, 'utf8'), reads), 0)
  t.ok(reads.length > 0 && reads.length < 40, 'the oldest lines were rotated away')
  t.same(reads.map(r => r.t), reads.map(r => r.t).sort((a, b) => a - b), 'oldest first')
  t.equal(reads.at(-1)!.t, 39)
  t.equal(parseRequestLog('1\tk\t10\t5\tmiss\ts\n2\tk\t10\n', []), 1, 'a torn last line is skipped, not an error')
  t.equal(parseRequestLog('1\tk/0\t10\t5\tmiss\ttab_here\n', reads), 0)
})

t.test('the log carries the upstream bytes fetched since its last line, apart from the reads', async t => {
  const dir = t.testdir()
  let upstream = 0
  const log = new RequestLog(dir, 1 << 20, 1, quietLogger('edge'), async () => upstream)
  log.record(1, 'movie/0/abc', 1000, 1000, 'miss', 's')
  upstream = 1000
  await log.flush()
  await log.flush() // nothing fetched since: no line
  upstream = 3500
  log.record(2, 'movie/1/abc', 1000, 500, 'coalesced', 's')
  await log.close()
  const reads: LoggedRead[] = []
  const up = { bytes: 0, lines: 0 }
  for (const f of await logFiles(dir)) t.equal(parseRequestLog(readFileSync(f, 'utf8'), reads, up), 0)
  t.same(reads.map(r => r.key), ['movie/0/abc', 'movie/1/abc'], 'upstream lines are no reads')
  t.same(up, { bytes: 3500, lines: 2 })
})
