import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent } from 'undici'
import { PlayerClient } from '../../client/player.js'
import { SequentialReader } from '../../client/sequential-reader.js'
import { readerSizes, type Scenario } from './audience.js'

/**
 * The generator's own ceiling for this scenario: as many players as the
 * scenario (up to 32), each reading through the same player client, sequential
 * reader and Agent settings as a session, as fast as they can, from a trivial
 * server answering every range from memory. A players run whose MB/s nears it
 * measures the generator, not the cluster.
 */
export async function playersCeiling(s: Scenario, seconds = 2): Promise<number> {
  const size = 1024 ** 4 // a virtual 1 TiB title: no reader reaches its end
  const body = Buffer.alloc(1024 * 1024, 7)
  const server = createServer((req, res) => {
    // the player's probe
    if (req.method === 'HEAD') return res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes', etag: '"ceiling"' }).end()
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
    const from = m ? Number(m[1]) : 0
    const len = m ? Math.min(body.length, Number(m[2]) - from + 1) : 1
    res.writeHead(206, { 'content-length': len, 'content-range': `bytes ${from}-${from + len - 1}/${size}`, etag: '"ceiling"' })
    res.end(body.subarray(0, len))
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()))
  const agent = new Agent({ keepAliveTimeout: 10_000 })
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ceiling`
    const mediaBps = Math.max(...s.bitrates.map(b => b.bps)) / 8
    const end = performance.now() + seconds * 1000
    const counts = await Promise.all(Array.from({ length: Math.max(1, Math.min(32, s.players)) }, async () => {
      const client = await PlayerClient.open({ contentId: 'ceiling', urls: [{ url }] }, { dispatcher: agent, reportIntervalMs: 0 })
      const reader = new SequentialReader(client, { ...readerSizes(mediaBps, s.bufferS), discard: true })
      let n = 0
      while (performance.now() < end) n += await reader.skip(1024 * 1024)
      await reader.close()
      return n
    }))
    return counts.reduce((a, b) => a + b, 0) / 1e6 / seconds
  } finally {
    await agent.destroy().catch(() => {})
    server.closeAllConnections()
    server.close()
  }
}
