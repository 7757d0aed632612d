import { request as httpRequest } from 'node:http'

/**
 * Time to first byte of one request on a fresh connection (no agent, so no
 * reused socket hides a connect), and time to the last byte. The body is kept
 * so the caller can check it: a fast wrong answer is not a result.
 */
export interface FirstByte {
  status: number
  /** from sending the request to the first body byte */
  ttfbMs: number
  /** from sending the request to the end of the body */
  totalMs: number
  body: Buffer
  headers: Record<string, string | string[] | undefined>
}

export function firstByte(url: string, headers: Record<string, string>, timeoutMs = 120_000): Promise<FirstByte> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6
    const req = httpRequest(url, { headers, agent: false, timeout: timeoutMs }, res => {
      let ttfb = -1
      const parts: Buffer[] = []
      res.on('data', (b: Buffer) => {
        if (ttfb < 0) ttfb = ms()
        parts.push(b)
      })
      res.once('end', () => resolve({ status: res.statusCode ?? 0, ttfbMs: ttfb < 0 ? ms() : ttfb, totalMs: ms(), body: Buffer.concat(parts), headers: res.headers }))
      res.once('error', reject)
    })
    req.once('timeout', () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)))
    req.once('error', reject)
    req.end()
  })
}
