import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { runCli } from '../helpers/spawn.js'

/**
 * From a read-only audit (stop 41): `reelcdn play --router 127.0.0.1:7000`
 * (no scheme) printed only "Invalid URL", and a router answering 200 `{}`
 * printed "Cannot read properties of undefined (reading 'map')". Each now
 * names what was wrong.
 */
t.test('a --router without its scheme: named, with its value', async t => {
  const r = await runCli(['play', 'film', '--router', '127.0.0.1:7000'])
  t.not(r.code, 0)
  t.match(r.stderr, /--router/)
  t.match(r.stderr, /127\.0\.0\.1:7000/)
  t.notMatch(r.stderr, /\n\s+at /, 'no stack')
})

t.test('a play answer without urls: said so', async t => {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const r = await runCli(['play', 'film', '--router', `http://127.0.0.1:${(server.address() as AddressInfo).port}`])
  t.not(r.code, 0)
  t.match(r.stderr, /\/v1\/play\/film/)
  t.match(r.stderr, /urls/)
  t.notMatch(r.stderr, /Cannot read properties/)
})
