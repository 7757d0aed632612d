import t from 'tap'
import { multipartPlan, parseRange } from './range.js'

const size = 1000

t.test('single ranges resolve as RFC 9110 says', async t => {
  t.same(parseRange('bytes=0-0', size), [{ start: 0, end: 0 }], 'first byte')
  t.same(parseRange('bytes=999-999', size), [{ start: 999, end: 999 }], 'last byte')
  t.same(parseRange('bytes=-1', size), [{ start: 999, end: 999 }], 'suffix of one')
  t.same(parseRange('bytes=-5000', size), [{ start: 0, end: 999 }], 'suffix longer than the representation')
  t.same(parseRange('bytes=500-', size), [{ start: 500, end: 999 }], 'open-ended')
  t.same(parseRange('bytes=10-5000', size), [{ start: 10, end: 999 }], 'last-pos clamped')
  t.same(parseRange('Bytes=1-2', size), [{ start: 1, end: 2 }], 'unit is case-insensitive')
  t.same(parseRange('bytes=0-99999999999999999999', size), [{ start: 0, end: 999 }], 'huge last-pos')
})

t.test('unsatisfiable ranges are 416', async t => {
  t.equal(parseRange('bytes=1000-', size), 'unsatisfiable')
  t.equal(parseRange('bytes=1000-2000', size), 'unsatisfiable')
  t.equal(parseRange('bytes=-0', size), 'unsatisfiable')
  t.equal(parseRange('bytes=99999999999999999999-', size), 'unsatisfiable')
  t.equal(parseRange('bytes=2000-3000, 4000-', size), 'unsatisfiable', 'every spec unsatisfiable')
  t.equal(parseRange('bytes=0-', 0), 'unsatisfiable', 'nothing to send from an empty representation')
})

t.test('invalid headers are ignored (200)', async t => {
  for (const h of ['bytes=5-1', 'bytes=abc', 'bytes=1-2-3', 'bytes=', 'bytes=,', 'bytes=-', 'bytes 0-1',
    'items=0-1', 'bytes=0x10-', 'bytes=1-a', 'bytes=+1-2', 'bytes=- 1', 'bytes=0-1,5-1', ''])
    t.equal(parseRange(h, size), null, JSON.stringify(h))
  t.equal(parseRange(undefined, size), null)
})

t.test('several ranges are sorted and coalesced; too many are ignored', async t => {
  t.same(parseRange('bytes=500-599, 0-99', size), [{ start: 0, end: 99 }, { start: 500, end: 599 }])
  t.same(parseRange('bytes=0-99,50-150,151-160', size), [{ start: 0, end: 160 }])
  t.same(parseRange('bytes=0-9,2000-3000', size), [{ start: 0, end: 9 }], 'unsatisfiable specs dropped')
  t.same(parseRange('bytes=0-0, ,10-10', size), [{ start: 0, end: 10 }], 'empty elements allowed, small gap coalesced')
  const many = 'bytes=' + Array.from({ length: 17 }, (_, i) => `${i * 50}-${i * 50}`).join(',')
  t.equal(parseRange(many, size, 16), null)
})

t.test('a multipart plan knows its exact length', async t => {
  const ranges = [{ start: 0, end: 9 }, { start: 500, end: 509 }]
  const p = multipartPlan(ranges, size, 'video/mp4', 'B')
  const body = p.heads[0]! + 'x'.repeat(10) + p.heads[1]! + 'y'.repeat(10) + p.tail
  t.equal(Buffer.byteLength(body), p.length)
  t.match(p.heads[1]!, /content-range: bytes 500-509\/1000/)
})
