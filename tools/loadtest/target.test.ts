import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { checkTarget, isLoopback, routerPlay } from './target.js'

t.test('loopback targets pass, anything else needs --allow-remote', async t => {
  for (const u of ['http://127.0.0.1:8080', 'http://127.9.9.9', 'http://localhost:7000', 'http://[::1]:8080', 'http://[::ffff:127.0.0.1]:1', 'http://[::ffff:7f01:203]'])
    t.ok(isLoopback(u), u)
  for (const u of ['http://10.0.0.1', 'http://192.0.2.1:8080', 'http://example.com', 'http://[2001:db8::1]', 'http://128.0.0.1', 'http://localhost.example.com', 'http://[::ffff:10.0.0.1]', 'http://[::ffff:8000:1]'])
    t.notOk(isLoopback(u), u)
  t.throws(() => checkTarget('http://192.0.2.1:8080', false), { message: 'target http://192.0.2.1:8080 is not on this machine: pass --allow-remote to load a remote server' })
  t.doesNotThrow(() => checkTarget('http://192.0.2.1:8080', true))
  t.throws(() => checkTarget('file:///etc/passwd', true), /must be http or https/)
  t.throws(() => checkTarget('not a url', false), /is not a URL/)
})

t.test('a play answer naming a remote URL is refused without --allow-remote', async t => {
  let answer: object = {}
  const s = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)))
  await new Promise<void>(r => s.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => s.close())
  const router = `http://127.0.0.1:${(s.address() as AddressInfo).port}`
  answer = { contentId: 'a', urls: [{ url: 'http://203.0.113.5/v1/content/a', kind: 'edge' }, { url: `${router}/v1/content/a`, kind: 'origin' }] }
  await t.rejects(routerPlay(router, false)('a'), /203\.0\.113\.5\/v1\/content\/a is not on this machine/)
  t.equal((await routerPlay(router, true)('a')).urls.length, 2, 'allowed with --allow-remote')
  answer = { contentId: 'a', urls: [{ url: `${router}/v1/content/a` }], sessionUrl: 'http://cdn.example.com/v1/sessions/a' }
  await t.rejects(routerPlay(router, false)('a'), /cdn\.example\.com\/v1\/sessions\/a is not on this machine/, 'the session URL too')
})
