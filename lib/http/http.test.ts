import t from 'tap'
import net from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { HttpService, logUrl } from './http.js'
import { loadConfig } from '../config/config.js'
import { quietLogger } from '../logger.js'

t.test('logUrl replaces the value of every token query parameter and nothing else', async t => {
  t.equal(logUrl('/v1/content/a?token=abc.def'), '/v1/content/a?token=[redacted]')
  t.equal(logUrl('/v1/content/a?x=1&token=abc&y=2'), '/v1/content/a?x=1&token=[redacted]&y=2')
  t.equal(logUrl('/v1/content/a?token=abc#f'), '/v1/content/a?token=[redacted]#f')
  t.equal(logUrl('/v1/content/a?mytoken=abc'), '/v1/content/a?mytoken=abc', 'another parameter that ends in token is left')
  t.equal(logUrl('/v1/content/token=abc'), '/v1/content/token=abc', 'only the query')
  const plain = '/v1/content/a?x=1'
  t.equal(logUrl(plain), plain)
})

t.test('logUrl replaces a viewer credential (/v1/play?viewer=, a year-long credential) as it does a play token', async t => {
  t.equal(logUrl('/v1/play/a?viewer=v1.abc.def'), '/v1/play/a?viewer=[redacted]')
  t.equal(logUrl('/v1/play/a?region=FR&viewer=abc&x=1'), '/v1/play/a?region=FR&viewer=[redacted]&x=1')
  t.equal(logUrl('/v1/play/a?viewer=abc&token=def'), '/v1/play/a?viewer=[redacted]&token=[redacted]')
  t.equal(logUrl('/v1/play/a?myviewer=abc'), '/v1/play/a?myviewer=abc', 'another parameter that ends in viewer is left')
})

t.test('logUrl replaces a play token in the path of an adaptive title\'s files', async t => {
  t.equal(logUrl('/v1/content/a/t/abc.def/master.m3u8'), '/v1/content/a/t/[redacted]/master.m3u8')
  t.equal(logUrl('/v1/content/a/t/abc.def/v720.mp4?token=x'), '/v1/content/a/t/[redacted]/v720.mp4?token=[redacted]')
  t.equal(logUrl('/v1/content/t/master.m3u8'), '/v1/content/t/master.m3u8', 'a title called t')
  t.equal(logUrl('/v1/content/a/v720.mp4?x=/t/y'), '/v1/content/a/v720.mp4?x=/t/y', 'only the path')
  t.equal(logUrl('/v1/chunks/a/t/3'), '/v1/chunks/a/t/3', 'other routes are left')
})

t.test('the accepted hook hears every connection either listener accepts (the player port and the serve threads\' relay)', async t => {
  const cfg = loadConfig({ env: {}, overrides: {} })
  const svc = new HttpService({ name: 'test', http: cfg.http, logRequests: false, logger: quietLogger('test'), registry: new Registry(), ready: () => true, routes: [] })
  let accepted = 0
  svc.accepted = () => { accepted++ }
  await svc.listen(0, '127.0.0.1')
  const dir = mkdtempSync(join(tmpdir(), 'relay-'))
  await svc.listenRelay(join(dir, 'relay.sock'), 'secret')
  t.teardown(async () => { await svc.closeRelay(); await svc.close(); rmSync(dir, { recursive: true, force: true }) })
  const open = (to: { port: number; host: string } | { path: string }) => new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(to as net.NetConnectOpts, () => resolve(s))
    s.once('error', reject)
  })
  const port = Number(new URL(svc.url).port)
  const socks = [await open({ port, host: '127.0.0.1' }), await open({ port, host: '127.0.0.1' }), await open({ path: join(dir, 'relay.sock') })]
  for (let i = 0; i < 50 && accepted < 3; i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(accepted, 3, 'two player connections and one relay connection')
  for (const s of socks) s.destroy()
})
