import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { planResponse, type Representation } from './representation.js'

/** planResponse's Last-Modified: each time formatted once and kept, and every answer carries its own time, past the kept ones too. */
const req = (headers: Record<string, string> = {}) => ({ method: 'GET', headers }) as unknown as IncomingMessage
const rep = (lastModified: number): Representation => ({ size: 10, etag: '"e"', lastModified, contentType: 'application/octet-stream' })

t.test('Last-Modified is each representation\'s own time, however many times were formatted before it', async t => {
  const wrong: number[] = []
  const base = Date.UTC(2026, 11, 7, 6, 0, 0)
  // more distinct times than are kept, twice over: the second pass finds some kept and some formatted again
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < 3000; i++) {
      const ms = base + i * 1000 + (i % 1000)
      if (planResponse(req(), rep(ms), 1).headers['last-modified'] !== new Date(ms).toUTCString()) wrong.push(i)
    }
  }
  t.same(wrong, [])
})

t.test('If-Modified-Since against the kept time: 304 at or after it, 200 before it', async t => {
  const ms = Date.UTC(2026, 0, 2, 3, 4, 5, 678)
  planResponse(req(), rep(ms), 1)
  t.equal(planResponse(req({ 'if-modified-since': new Date(ms).toUTCString() }), rep(ms), 1).status, 304)
  t.equal(planResponse(req({ 'if-modified-since': new Date(ms - 1000).toUTCString() }), rep(ms), 1).status, 200)
})
