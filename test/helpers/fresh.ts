import http from 'node:http'
import { metric } from './edge.js'

export interface Got { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

/**
 * One request on a connection of its own (no agent, no keep-alive): with
 * serve threads, which thread accepts a connection is the kernel's choice,
 * so tests that must reach "either" open a fresh one per request.
 */
export function fresh(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, res => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * Sends bursts of `burst()` until the threads report having served at least
 * one more request than before (which loop accepts a connection is the
 * kernel's choice; a few bursts make "never a thread" vanishingly unlikely).
 */
export async function untilThreadsServe(edgeUrl: string, burst: () => Promise<unknown>): Promise<void> {
  const before = await metric(edgeUrl, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' })
  for (let i = 0; i < 20; i++) {
    await burst()
    await new Promise(r => setTimeout(r, 30)) // a flush of the threads' counts
    if (await metric(edgeUrl, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' }) > before) return
  }
  throw new Error('20 bursts of requests and no serve thread answered one')
}
