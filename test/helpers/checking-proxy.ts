import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'undici'

/**
 * A proxy that sits between load-test players and the server under test and
 * checks every title byte it passes against the source, so a test can drive
 * load with the load tester (which only counts failed sessions) and still count
 * each failed or wrong read. The player client retries a failed read, which
 * would hide a server failure from the session result: here every upstream
 * answer counts.
 *
 * Only `GET /v1/content/{id}` (with its Range and If-Range) and the player
 * client's probe, `HEAD /v1/content/{id}`, are passed on: the requests players
 * make. A read is failed when the upstream answers other than 200/206, the
 * request errors or times out, or the body is short; wrong when a byte, the
 * Content-Range total or the range itself differs from the source. A probe is
 * failed when it is not a 200, wrong when its Content-Length is not the
 * source's size, and counted apart otherwise. A player that hangs up mid-body
 * is neither: it is counted apart.
 */
export interface ReadStats {
  reads: number
  /** body bytes passed on, whatever the read's outcome */
  bytes: number
  failed: number
  wrong: number
  /** downstream hang-ups: the player went away, the upstream did not fail */
  aborted: number
  /** HEAD probes answered well (not reads: no body) */
  probes: number
  /** the first few failures and wrong reads, for the test's message */
  errors: string[]
}

export interface CheckingProxy {
  url: string
  stats: ReadStats
  /** every answer so far, whatever its outcome */
  answered(): number
  close(): Promise<void>
}

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+)$/

export async function startCheckingProxy(upstream: string, source: (contentId: string) => Buffer | undefined,
  timeoutMs = 10_000): Promise<CheckingProxy> {
  const stats: ReadStats = { reads: 0, bytes: 0, failed: 0, wrong: 0, aborted: 0, probes: 0, errors: [] }
  const note = (what: string) => { if (stats.errors.length < 5) stats.errors.push(what) }
  const fail = (what: string) => { stats.failed++; note(`failed: ${what}`) }
  const wrong = (what: string) => { stats.wrong++; note(`wrong: ${what}`) }
  const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 })

  const server = http.createServer((req, res) => {
    void (async () => {
      const m = /^\/v1\/content\/([A-Za-z0-9._-]+)$/.exec(req.url ?? '')
      const want = m ? source(m[1]!) : undefined
      const what = `${req.method} ${req.url} ${req.headers.range ?? ''}`
      if ((req.method !== 'GET' && req.method !== 'HEAD') || !want) {
        fail(`${what}: not a title read`)
        return void res.writeHead(404).end()
      }
      if (req.method === 'HEAD') return probe(req.url!, want.length, what, res)
      const headers: Record<string, string> = {}
      for (const h of ['range', 'if-range'] as const) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h]
      let up
      try {
        up = await request(`${upstream}${req.url}`, { method: 'GET', headers, dispatcher: agent, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      } catch (err) {
        fail(`${what}: ${(err as Error).message}`)
        return void res.writeHead(502).end()
      }
      if (up.statusCode !== 200 && up.statusCode !== 206) {
        const text = await up.body.text().catch(() => '')
        fail(`${what}: ${up.statusCode} ${text.slice(0, 200)}`)
        return void res.writeHead(up.statusCode, { 'content-type': 'application/json' }).end(text)
      }
      let start = 0
      let length = want.length
      const out: http.OutgoingHttpHeaders = { 'content-type': String(up.headers['content-type'] ?? 'application/octet-stream') }
      if (up.headers.etag) out.etag = String(up.headers.etag)
      if (up.statusCode === 206) {
        const cr = CONTENT_RANGE.exec(String(up.headers['content-range'] ?? ''))
        if (!cr || Number(cr[3]) !== want.length) {
          wrong(`${what}: content-range ${String(up.headers['content-range'])} for a title of ${want.length} bytes`)
          await up.body.dump().catch(() => {})
          return void res.writeHead(502).end()
        }
        start = Number(cr[1])
        length = Number(cr[2]) - start + 1
        const asked = /^bytes=(\d+)-(\d*)$/.exec(headers.range ?? '')
        if (asked && (start !== Number(asked[1]) || Number(cr[2]) !== Math.min(want.length - 1, asked[2] ? Number(asked[2]) : Infinity))) {
          wrong(`${what}: answered ${String(up.headers['content-range'])}`)
          await up.body.dump().catch(() => {})
          return void res.writeHead(502).end()
        }
        out['content-range'] = String(up.headers['content-range'])
      }
      out['content-length'] = length
      res.writeHead(up.statusCode, out)
      let got = 0
      let differs = false
      try {
        for await (const piece of up.body as AsyncIterable<Buffer>) {
          if (!differs && !piece.equals(want.subarray(start + got, start + got + piece.length))) differs = true
          got += piece.length
          stats.bytes += piece.length
          // the upstream body is read to its end whatever the player does: its answer is what is checked
          if (!res.destroyed && !res.write(piece)) await drained(res)
        }
      } catch (err) {
        fail(`${what}: body cut after ${got} of ${length} bytes: ${(err as Error).message}`)
        return void res.destroy()
      }
      if (got !== length) {
        fail(`${what}: body of ${got} bytes, ${length} announced`)
        return void res.destroy()
      }
      if (differs) wrong(`${what}: bytes differ from the source`)
      else stats.reads++
      if (res.destroyed) stats.aborted++
      else res.end()
    })()
  })
  const probe = async (path: string, size: number, what: string, res: http.ServerResponse) => {
    try {
      const up = await request(`${upstream}${path}`, { method: 'HEAD', dispatcher: agent, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      await up.body.dump()
      if (up.statusCode !== 200) {
        fail(`${what}: ${up.statusCode}`)
        return void res.writeHead(up.statusCode).end()
      }
      if (Number(up.headers['content-length']) !== size) {
        wrong(`${what}: content-length ${String(up.headers['content-length'])} for a title of ${size} bytes`)
        return void res.writeHead(502).end()
      }
      stats.probes++
      res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes', ...(up.headers.etag ? { etag: String(up.headers.etag) } : {}) }).end()
    } catch (err) {
      fail(`${what}: ${(err as Error).message}`)
      res.writeHead(502).end()
    }
  }
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    answered: () => stats.reads + stats.failed + stats.wrong,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
      await agent.close()
    },
  }
}

/** Resolves when `res` can take more, or is closed. */
function drained(res: http.ServerResponse): Promise<void> {
  return new Promise(resolve => {
    const done = () => { res.off('drain', done); res.off('close', done); resolve() }
    res.on('drain', done)
    res.on('close', done)
  })
}
