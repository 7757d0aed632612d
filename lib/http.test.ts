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
