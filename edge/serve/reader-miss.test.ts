import t from 'tap'
import type { ServerResponse } from 'node:http'
import type { EdgeMetrics } from '../../lib/metrics.js'
import type { ChunkCache } from '../tiers/cache.js'
import type { Coalescer } from '../fill/coalesce.js'
import type { Fill } from '../fill/fill.js'
import type { ChunkRef, TitleFile } from '../title.js'
import type { Send } from './send.js'
import { TitleReader } from './reader.js'

/**
 * A miss's first byte (issue 16): readahead of the next chunk starts only
 * after that byte was written, so starting its fill (a chunk-sized buffer,
 * requests) never comes between the player and its first byte. The order
 * is read off fakes: a coalescer whose fill has the byte at once, a send
 * that records writes.
 */
const CS = 100
const counter = () => new Proxy({}, { get: (o: Record<string, { n: number }>, k: string) => (o[k] ??= { n: 0 }) })

t.test('a miss writes its first byte before readahead starts the next chunk\'s fill', async t => {
  const events: string[] = []
  const buf = Buffer.alloc(CS, 7)
  const fill = { buf, waitFor: async () => {}, availableFrom: () => CS, hold: () => {}, drop: () => {} } as unknown as Fill
  const fills = {
    join: (ref: ChunkRef) => { events.push(`miss ${ref.index}`); return { fill, joined: false } },
    prefetch: (ref: ChunkRef) => { events.push(`readahead ${ref.index}`); return 'started' },
  } as unknown as Coalescer
  const cache = { ram: { get: () => undefined }, disk: { get: () => undefined } } as unknown as ChunkCache
  const metrics = { hot: { reads: counter(), readahead: counter(), bytes: counter(), files: new Proxy({}, { get: () => counter() }) } } as unknown as EdgeMetrics
  const send = (async (_res: ServerResponse, piece: Buffer) => { events.push(`write ${piece.length}`) }) as unknown as Send
  const reader = new TitleReader(cache, fills, metrics, send, 1)
  const file = { contentId: 'film', rid: undefined, name: 'film', size: 3 * CS, chunkSize: CS, chunks: ['a', 'b', 'c'], blocks: undefined,
    refs: [], kind: 'title' } as unknown as TitleFile
  const src = await reader.open(file, 0, 10, true)
  await reader.writeRange(file, 10, 49, {} as ServerResponse, { src })
  await new Promise<void>(resolve => setImmediate(resolve))
  t.same(events, ['miss 0', 'write 40', 'readahead 1'])
})
