import t from 'tap'
import { parseMeta } from './meta.js'

t.test('metadata from the Reelcdn-Meta header, with defaults', async t => {
  t.same(parseMeta({}, 'm1'), { title: 'm1', categories: [], contentType: 'application/octet-stream',
    rights: { regions: ['*'], availableFrom: null, availableUntil: null } })
  const m = parseMeta({ 'content-type': 'video/mp4', 'reelcdn-meta': JSON.stringify({ title: 'Été', categories: ['drama'],
    rights: { regions: ['FR'], availableFrom: '2025-01-01T00:00:00Z', availableUntil: 1767225600000 } }) }, 'm1')
  t.equal(m.contentType, 'video/mp4', 'Content-Type when the header names none')
  t.equal(m.rights.availableFrom, Date.parse('2025-01-01T00:00:00Z'))
  t.equal(m.rights.availableUntil, 1767225600000)
})

t.test('bad metadata is refused by field', async t => {
  const bad = (v: unknown) => () => parseMeta({ 'reelcdn-meta': typeof v === 'string' ? v : JSON.stringify(v) }, 'm')
  t.throws(bad('{nope'), { code: 'CDN_ERR_BAD_META', message: /not valid JSON/ })
  t.throws(bad({ rights: { regions: ['fr'] } }), { message: /rights\.regions\.0/ })
  t.throws(bad({ rights: { availableFrom: 'yesterday' } }), { message: /not an ISO 8601 date/ })
  t.throws(bad({ rights: { availableFrom: 2, availableUntil: 1 } }), { message: /availableUntil must be after/ })
  t.throws(bad({ extra: 1 }), { message: /extra/ })
})
