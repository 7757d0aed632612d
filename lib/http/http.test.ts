import t from 'tap'
import { logUrl } from './http.js'

t.test('logUrl replaces the value of every token query parameter and nothing else', async t => {
  t.equal(logUrl('/v1/content/a?token=abc.def'), '/v1/content/a?token=[redacted]')
  t.equal(logUrl('/v1/content/a?x=1&token=abc&y=2'), '/v1/content/a?x=1&token=[redacted]&y=2')
  t.equal(logUrl('/v1/content/a?token=abc#f'), '/v1/content/a?token=[redacted]#f')
  t.equal(logUrl('/v1/content/a?mytoken=abc'), '/v1/content/a?mytoken=abc', 'another parameter that ends in token is left')
  t.equal(logUrl('/v1/content/token=abc'), '/v1/content/token=abc', 'only the query')
  const plain = '/v1/content/a?x=1'
  t.equal(logUrl(plain), plain)
})

t.test('logUrl replaces a play token in the path of an adaptive title\'s files', async t => {
  t.equal(logUrl('/v1/content/a/t/abc.def/master.m3u8'), '/v1/content/a/t/[redacted]/master.m3u8')
  t.equal(logUrl('/v1/content/a/t/abc.def/v720.mp4?token=x'), '/v1/content/a/t/[redacted]/v720.mp4?token=[redacted]')
  t.equal(logUrl('/v1/content/t/master.m3u8'), '/v1/content/t/master.m3u8', 'a title called t')
  t.equal(logUrl('/v1/content/a/v720.mp4?x=/t/y'), '/v1/content/a/v720.mp4?x=/t/y', 'only the path')
  t.equal(logUrl('/v1/chunks/a/t/3'), '/v1/chunks/a/t/3', 'other routes are left')
})
