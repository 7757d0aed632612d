import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { PlayerClient, type PlayResponse } from '../../client/player.js'
import { EDGE_TOKEN, TestCluster } from './harness.js'
import { settled, startTestEdge } from '../helpers/edge.js'

/**
 * The player client against the real thing: a router, two real edges
 * registered with it (requireToken on), the play response's URLs. Each edge
 * fills from the router through a small proxy that can hold one chunk's fill,
 * so the test kills the edge the player reads from at a known point: after it
 * has served chunk 0, while chunk 1 is still on its way.
 */
const CS = 256 * 1024

class HoldProxy {
  url = ''
  private gate: Promise<void>
  private open!: () => void
  private heldResolve!: () => void
  readonly held: Promise<void>
  private readonly server: http.Server

  constructor(target: string, private readonly holdPath: RegExp) {
    this.gate = new Promise(r => { this.open = r })
    this.held = new Promise(r => { this.heldResolve = r })
    this.server = http.createServer((req, res) => {
      void (async () => {
        if (this.holdPath.test(req.url ?? '')) {
          this.heldResolve()
          await this.gate
        }
        const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : req
        const up = await request(`${target}${req.url}`, { method: req.method as 'GET', headers: req.headers, body })
        res.writeHead(up.statusCode, up.headers as http.OutgoingHttpHeaders)
        for await (const piece of up.body) if (!res.write(piece)) await once(res, 'drain')
        res.end()
      })().catch(() => res.destroy())
    })
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  release(): void {
    this.open()
  }

  async close(): Promise<void> {
    this.release()
    this.server.closeAllConnections()
    await new Promise<void>(r => this.server.close(() => r()))
  }
}

t.test('the player fails over when its edge is killed mid-read and returns byte-exact data', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS })
  const body = randomBytes(CS * 4 + 777)
  await c.ingest('film', body)
  const edges = []
  for (const name of ['edge-a', 'edge-b']) {
    const proxy = await new HoldProxy(c.url, /\/v1\/content\/film\/chunks\/1$/).start()
    t.teardown(() => proxy.close())
    const edge = await startTestEdge(t, { url: proxy.url, token: undefined }, {
      'edge.id': name, 'edge.networks': ['127.0.0.0/8'], 'edge.requireToken': true, 'edge.readaheadChunks': 0, 'http.shutdownGraceMs': 0,
    }, { REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_TOKEN_KEYS: 'k1:test-token-key-one-0123456789' })
    t.ok(await edge.reporter.sendHeartbeat())
    edges.push({ name, proxy, edge })
  }
  const play = await (await request(`${c.url}/v1/play/film`)).body.json() as PlayResponse & { urls: { id: string }[] }
  t.same(play.urls.map(u => u.id).sort(), ['edge-a', 'edge-b', 'origin'])
  // the whole answer, origin included: it is the client's last resort, so the failover goes to the other edge
  const client = await PlayerClient.open(play, { timeoutMs: 5000 })
  const first = edges.find(e => client.sources[0]!.url.startsWith(e.edge.url))!
  t.ok(first, 'the client reads from one of the edges')
  const other = edges.find(e => e !== first)!

  const reading = client.read(0, body.length)
  await first.proxy.held // chunk 0 served, chunk 1's fill waiting at the proxy
  await first.edge.close() // killed mid-read
  other.proxy.release()
  const got = await reading
  t.equal(got.length, body.length)
  t.ok(got.equals(body), 'byte-exact')
  t.ok(client.failovers >= 1, `failed over ${client.failovers} time(s)`)
  t.ok(client.sources[0]!.url.startsWith(other.edge.url), 'now reading from the other edge')
  t.equal(client.bytesFromOrigin, 0, 'not from the origin')
  await settled(other.edge)
})
