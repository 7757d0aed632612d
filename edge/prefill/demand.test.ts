import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { quietLogger } from '../../lib/logger.js'
import { DemandRecorder, EdgeReporter } from './demand.js'

t.test('an adaptive title is counted per rendition too; a single-file title as before', async t => {
  const d = new DemandRecorder(60_000)
  // a viewer plays v720 from the start (chunks 0-1 of 10), switches to v360 (chunk 3 of 4), audio all along (chunk 0 of 1)
  d.request('tok-a', 'abr', 'v720')
  d.chunks('abr', 0, 1, 10, 'v720', 'video')
  d.request('tok-a', 'abr', 'a128')
  d.chunks('abr', 0, 0, 1, 'a128', 'audio')
  d.request('tok-a', 'abr', 'v360')
  d.chunks('abr', 3, 3, 4, 'v360', 'video')
  d.request('tok-a', 'abr', 'v360')
  // another viewer, v360 only
  d.request('tok-b', 'abr', 'v360')
  d.chunks('abr', 0, 0, 4, 'v360', 'video')
  d.request('x', 'single')
  d.chunks('single', 0, 1, 2)
  const [abr, single] = d.take()
  t.equal(abr!.plays, 2, 'two sessions played the title')
  const r = Object.fromEntries(abr!.renditions!.map(x => [x.id, x]))
  t.same(Object.keys(r).sort(), ['a128', 'v360', 'v720'])
  t.same([r.v720!.plays, r.v360!.plays, r.a128!.plays], [1, 2, 1], 'a rendition\'s plays are the sessions that read it')
  t.equal(r.v720!.slices[0]! + r.v720!.slices[2]!, 2, 'v720 reads by slice of its own file')
  t.equal(r.v360!.slices[15], 1, 'chunk 3 of 4 is slice 15')
  t.equal(abr!.slices.reduce((a, b) => a + b, 0), 4, 'the title\'s slices count its video reads, not its audio')
  t.same(single, { contentId: 'single', plays: 1, slices: single!.slices }, 'a single file has no renditions field: the old report')
  t.equal(single!.slices[0]! + single!.slices[10]!, 2)
  d.restore([abr!])
  const again = d.take()[0]!
  t.same(again.renditions!.map(x => [x.id, x.plays]), [['v720', 1], ['a128', 1], ['v360', 2]], 'restored counts keep their renditions')
})

t.test('a router from before issue 15 refuses the renditions field: the report goes again without it, and later ones too', async t => {
  const bodies: { titles: { renditions?: unknown; slices?: number[] }[] }[] = []
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString()) as { titles: { renditions?: unknown }[] }
      bodies.push(body)
      // what an old router's strict schema answers
      const bad = body.titles.some(x => x.renditions !== undefined)
      res.writeHead(bad ? 400 : 200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(bad ? { error: { code: 'CDN_ERR_BAD_REQUEST', message: 'invalid demand report: titles.0: Unrecognized key(s) in object: \'renditions\'' } }
        : { titles: body.titles.length }))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const recorder = new DemandRecorder(60_000)
  const reporter = new EdgeReporter({ routerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 't', heartbeatMs: 0, reportMs: 0,
    heartbeat: () => ({ id: 'e1', url: 'http://e1', networks: [], regions: [], healthy: true, load: 0, freeBytes: 0 }), recorder, logger: quietLogger('edge') })
  recorder.request('s', 'abr', 'v720')
  recorder.chunks('abr', 0, 0, 3, 'v720', 'video')
  t.ok(await reporter.sendReport(), 'reported')
  t.equal(bodies.length, 2, 'refused once, then sent again')
  t.same(bodies[1]!.titles, [{ contentId: 'abr', plays: 1, slices: bodies[1]!.titles[0]!.slices }] as unknown[], 'without renditions')
  recorder.request('s2', 'abr', 'v720')
  t.ok(await reporter.sendReport())
  t.equal(bodies.length, 3, 'the next report goes without them at once')
  t.equal(bodies[2]!.titles[0]!.renditions, undefined)
})

t.test('top titles: plays being gathered plus the last report\'s, most first', async t => {
  const d = new DemandRecorder(60_000)
  d.request('s1', 'a'); d.request('s2', 'a'); d.request('s3', 'b')
  t.same(d.top(5), [{ contentId: 'a', plays: 2 }, { contentId: 'b', plays: 1 }], 'before any report: since start')
  d.take()
  d.request('s4', 'b'); d.request('s5', 'b'); d.request('s6', 'c')
  t.same(d.top(2), [{ contentId: 'b', plays: 3 }, { contentId: 'a', plays: 2 }], 'the last report\'s and the new counts, cut to n')
  d.take()
  t.same(d.top(5), [{ contentId: 'b', plays: 2 }, { contentId: 'c', plays: 1 }], 'two reports back is forgotten')
})

t.test('a router from before issue 17 refuses site and capacityBytes: the heartbeat goes again without them, and later ones too', async t => {
  const bodies: Record<string, unknown>[] = []
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString()) as Record<string, unknown>
      bodies.push(body)
      // what an old router's strict schema answers
      const bad = 'site' in body || 'capacityBytes' in body
      res.writeHead(bad ? 400 : 200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(bad ? { error: { code: 'CDN_ERR_BAD_REQUEST', message: 'invalid heartbeat: (root): Unrecognized key(s) in object: \'site\', \'capacityBytes\'' } }
        : { id: body.id, accepted: true }))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const answers: unknown[] = []
  const reporter = new EdgeReporter({ routerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 't', heartbeatMs: 0, reportMs: 0,
    heartbeat: () => ({ id: 'e1', url: 'http://e1', networks: [], regions: [], healthy: true, load: 0, freeBytes: 0, site: 'loop', capacityBytes: 10 }),
    recorder: new DemandRecorder(60_000), logger: quietLogger('edge'), answered: a => answers.push(a) })
  t.ok(await reporter.sendHeartbeat(), 'accepted')
  t.equal(bodies.length, 2, 'refused once, then sent again')
  t.same(bodies[1], { id: 'e1', url: 'http://e1', networks: [], regions: [], healthy: true, load: 0, freeBytes: 0 }, 'without site and capacity')
  t.ok(await reporter.sendHeartbeat())
  t.equal(bodies.length, 3, 'the next heartbeat goes without them at once')
  t.same(answers, [{ id: 'e1', accepted: true }, { id: 'e1', accepted: true }], 'each answer handed on')
  t.same(reporter.heartbeats, { ok: 2, failed: 0 })
})
