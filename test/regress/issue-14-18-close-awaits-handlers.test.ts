import t from 'tap'
import net from 'node:net'
import { Registry } from 'prom-client'
import { HttpService } from '../../lib/http/http.js'
import { loadConfig } from '../../lib/config/config.js'
import { quietLogger } from '../../lib/logger.js'

/**
 * A service's close() waits for its handlers, not only for its responses.
 * Found in the suite after the repair report moved to the shards (item 18):
 * a router closing mid-pass cut its PUT of the report, the shard's response
 * closed, close() returned, and the shard's handler wrote the report file
 * afterwards, into a data directory its owner was already removing
 * (ENOTEMPTY). A handler still running when its client left must finish (or
 * fail) before close() resolves, within the shutdown grace.
 */
t.test('close() resolves only once a handler whose client left has finished', async t => {
  const cfg = loadConfig({ env: {}, overrides: { 'http.shutdownGraceMs': 5000 } })
  let entered!: () => void
  const inHandler = new Promise<void>(r => { entered = r })
  let release!: () => void
  const gate = new Promise<void>(r => { release = r })
  let finished = false
  const svc = new HttpService({ name: 'test', http: cfg.http, logRequests: false, logger: quietLogger('test'), registry: new Registry(), ready: () => true,
    routes: [{ path: '/slow', methods: { PUT: async (req, res) => {
      for await (const _ of req) { /* the body */ }
      entered()
      await gate // the work after the body: a file written, say
      finished = true
      res.end()
    } } }] })
  await svc.listen(0, '127.0.0.1')
  const port = Number(new URL(svc.url).port)
  const sock = net.connect(port, '127.0.0.1')
  sock.on('error', () => {})
  sock.write('PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi')
  await inHandler
  sock.destroy() // the client leaves while the handler works
  await new Promise(r => setTimeout(r, 50))
  let closed = false
  const closing = svc.close().then(() => { closed = true })
  await new Promise(r => setTimeout(r, 200))
  t.notOk(closed, 'close() waits while the handler runs')
  release()
  await closing
  t.ok(finished, 'the handler finished before close() resolved')
})
