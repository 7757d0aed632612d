import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { ownersOf } from '../../lib/affinity.js'
import { quietLogger } from '../../lib/logger.js'
import { edgePeerMetrics } from '../../lib/metrics.js'
import type { ChunkRef } from '../title.js'
import type { ChunkFetch } from '../fill/fill.js'
import { PeerSource } from './peer-source.js'
import { SiteView } from './site-view.js'

/** The asking side's decisions: whom it asks, and when it asks nobody (one hop; an owner held back after a refusal). */
t.test('a chunk being answered to a peer is filled by the edge\'s own path; a refusal holds the owner back', async t => {
  const asked: string[] = []
  const owner = http.createServer((req, res) => {
    asked.push(req.url ?? '')
    res.writeHead(421, { 'content-type': 'application/json' }).end('{"error":{"code":"CDN_ERR_PEER_NOT_OWNER","message":"no"}}')
  })
  await new Promise<void>(r => owner.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => owner.close(() => r())))
  const members = [{ id: 'edge-a', url: `http://127.0.0.1:${(owner.address() as AddressInfo).port}`, weight: 1 },
    { id: 'edge-b', url: 'http://127.0.0.1:1', weight: 1 }]
  const view = new SiteView('s1', () => 'edge-b')
  view.update({ site: { id: 's1', members } })
  let id = ''
  for (let n = 0; ownersOf(id, members, 1)[0]?.id !== 'edge-a'; n++) id = `film-${n}`
  const ref: ChunkRef = { key: `${id}/0/abc`, contentId: id, index: 0, sha256: 'abc', size: 10 }
  const own: string[] = []
  const next: ChunkFetch = async (r, from, to) => {
    own.push(`${r.key} ${from}-${to}`)
    return Object.assign((async function* () { yield Buffer.alloc(to - from) })(), { destroy: () => {} })
  }
  const registry = new Registry()
  const metrics = edgePeerMetrics(registry)
  const peer = new PeerSource(view, { chunk: next, crcs: undefined }, { token: 'x', firstByteTimeoutMs: 1000, holdMs: 60_000, connections: 1, idleTimeoutMs: 1000 },
    metrics, quietLogger('edge'))
  t.teardown(() => peer.close())
  const signal = new AbortController().signal

  peer.serving.set(ref.key, 1)
  await peer.chunk(ref, 0, 10, signal)
  t.same(asked, [], 'answering a peer for this chunk: no peer is asked (never forwarded)')
  t.same(own, [`${ref.key} 0-10`], 'its own path instead')
  peer.serving.delete(ref.key)

  await peer.chunk(ref, 0, 10, signal)
  t.same(asked, [`/v1/peer/${id}/chunk/0`], 'otherwise the owner is asked first')
  t.equal(own.length, 2, 'and its refusal sends the request by the own path')
  t.equal((await metrics.fills.get()).values.find(v => v.labels.outcome === 'refused')?.value, 1)
  await peer.chunk(ref, 0, 10, signal)
  t.equal(asked.length, 1, 'a refusing owner is held back')
  t.equal((await metrics.fills.get()).values.find(v => v.labels.outcome === 'held')?.value, 1)
})
