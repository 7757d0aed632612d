import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { execFile } from 'node:child_process'
import { CLI } from '../helpers/spawn.js'

/**
 * From a read-only audit (stop 41): `reelcdn play --router 127.0.0.1:7000`
 * (no scheme) printed only "Invalid URL", and a router answering 200 `{}`
 * printed "Cannot read properties of undefined (reading 'map')". Each now
 * names what was wrong.
 */
function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], (err, _stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stderr }))
  })
}

t.test('a --router without its scheme: named, with its value', async t => {
  const r = await cli(['play', 'film', '--router', '127.0.0.1:7000'])
  t.not(r.code, 0)
  t.match(r.stderr, /--router/)
  t.match(r.stderr, /127\.0\.0\.1:7000/)
  t.notMatch(r.stderr, /\n\s+at /, 'no stack')
})

t.test('a play answer without urls: said so', async t => {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const r = await cli(['play', 'film', '--router', `http://127.0.0.1:${(server.address() as AddressInfo).port}`])
  t.not(r.code, 0)
  t.match(r.stderr, /\/v1\/play\/film/)
  t.match(r.stderr, /urls/)
  t.notMatch(r.stderr, /Cannot read properties/)
})
