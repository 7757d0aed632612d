import http from 'node:http'

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
