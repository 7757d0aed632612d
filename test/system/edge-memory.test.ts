import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric } from '../helpers/edge.js'
import { spawnEdge } from '../helpers/edge-process.js'

/**
 * Memory stays bounded whatever the players do: a real edge process streams a
 * title several times larger than its RAM tier to players that read and to
 * players that stall mid-body, and its resident set stays near
 *   fixed overhead + RAM tier + fills in flight + buffers pinned by stalled players,
 * not near the bytes it moved. The bound asserted is deliberately loose (GC
 * timing varies); the numbers are printed.
 */
const MiB = 1024 ** 2
const CS = 4 * MiB
const CHUNKS = 40

t.test('a big title through a small RAM tier, with stalled players: RSS stays bounded', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CHUNKS * CS, 'memory')
  await up.addTitle('big', bytes, { chunkSize: CS })
  const edge = await spawnEdge(t, ['--upstream', up.url, '--data-dir', t.testdir(), '--ram', '16MiB', '--disk', '0',
    '--max-fills', '4', '--readahead', '1'])
  const rss = () => metric(edge.url, 'process_resident_memory_bytes')
  const idle = await rss()
  let peak = idle

  const u = new URL(edge.url)
  const stalled: net.Socket[] = []
  for (let i = 0; i < 8; i++) {
    const s = net.connect(Number(u.port), u.hostname)
    await once(s, 'connect')
    s.write(`GET /v1/content/big HTTP/1.1\r\nhost: x\r\nrange: bytes=${i * 5 * CS}-\r\n\r\n`)
    s.pause()
    stalled.push(s)
  }
  let seed = 9
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
  let bad = 0
  const reader = async () => {
    for (let i = 0; i < 10; i++) {
      const c = rnd(CHUNKS)
      const r = await get(`${edge.url}/v1/content/big`, { range: `bytes=${c * CS}-${(c + 1) * CS - 1}` })
      if (!r.body.equals(bytes.subarray(c * CS, (c + 1) * CS))) bad++
      peak = Math.max(peak, await rss())
    }
  }
  await Promise.all([reader(), reader(), reader(), reader()])
  for (const s of stalled) s.destroy()
  t.equal(bad, 0, '40 whole-chunk reads, byte-exact')
  const moved = await metric(edge.url, 'reelcdn_edge_bytes_served_total') + await metric(edge.url, 'reelcdn_edge_upstream_bytes_total')
  const budget = 16 * MiB + 4 * CS + 8 * CS // RAM tier + fills in flight + one chunk pinned per stalled player
  t.comment(`RSS idle ${(idle / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, after moving ${(moved / MiB).toFixed(0)} MiB; budget above idle ${(budget / MiB).toFixed(0)} MiB`)
  // unbounded buffering would hold far more: each stalled player alone could pull in the 35 chunks after its offset
  t.ok(peak - idle < budget + 192 * MiB, 'peak RSS is within the budget plus slack for the allocator and garbage not yet collected')
})
