import { readFile } from 'node:fs/promises'
import { Agent, request } from 'undici'
import { cpuSeconds } from './proc.js'
import type { WrkResult } from './wrk.js'

/**
 * One client reading a list of URLs in order, each body to its end, timed,
 * with the CPU every named process used meanwhile: the fill row's generator.
 * A fill is one long sequential read (a cold title with one GET, or its chunks
 * one after another), which wrk's fixed-duration loops do not model, so the row
 * reads with undici from the bench's own process, the same client for every
 * server it compares. Bodies are checked as they stream by, cheaply: the
 * length, and the block number TitleData stamps at the start of every 1 MiB
 * (a wrong, shifted or reordered block fails the run), not a hash, so the
 * generator stays light.
 *
 * The result is a WrkResult, so the report prints it like wrk's: `server` is
 * the CPU of `pids`, `client` the bench process's own, `other` the rest of
 * the machine; `extra` the CPU of `also` (e.g. the origin side of an edge
 * fill), in cores.
 */
const BLOCK = 1024 * 1024

export interface ReadTarget {
  url: string
  /** title offset of the body's first byte (for the block stamps) */
  offset: number
  /** body bytes expected */
  length: number
  headers?: Record<string, string>
}

export interface TimedRead extends WrkResult {
  /** cores `also` used */
  extra: number
}

export async function timedRead(targets: ReadTarget[], pids: number[], also: number[], ticks: number): Promise<TimedRead> {
  const agent = new Agent({ connections: 1 })
  const sum = async (ps: number[]) => (await Promise.all(ps.map(p => cpuSeconds(p, ticks)))).reduce((a, b) => a + b, 0)
  try {
    const [s0, a0, m0] = await Promise.all([sum(pids), sum(also), machineTicks()])
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    let bytes = 0
    for (const t of targets) {
      const r = await request(t.url, { dispatcher: agent, headers: t.headers ?? {} })
      if (r.statusCode !== 200 && r.statusCode !== 206) {
        throw new Error(`GET ${t.url}: ${r.statusCode} ${(await r.body.text()).slice(0, 300)}`)
      }
      let at = t.offset
      for await (const piece of r.body as AsyncIterable<Buffer>) {
        // every 1 MiB block that starts in this piece carries its number
        const first = Math.ceil(at / BLOCK) * BLOCK
        for (let b = first; b + 4 <= at + piece.length; b += BLOCK) {
          if (piece.readUInt32BE(b - at) !== b / BLOCK) throw new Error(`GET ${t.url}: wrong bytes at title offset ${b}`)
        }
        at += piece.length
      }
      if (at - t.offset !== t.length) throw new Error(`GET ${t.url}: ${at - t.offset} bytes, expected ${t.length}`)
      bytes += t.length
    }
    const seconds = (performance.now() - t0) / 1000
    const c = process.cpuUsage(c0)
    const [s1, a1, m1] = await Promise.all([sum(pids), sum(also), machineTicks()])
    const client = (c.user + c.system) / 1e6 / seconds
    const server = (s1 - s0) / seconds
    const machine = (m1.busy - m0.busy) / ticks / seconds
    const ms = seconds * 1000 / targets.length
    return {
      requests: targets.length, bytes, seconds, reqPerSec: targets.length / seconds, MBps: bytes / seconds / 1e6,
      latencyMs: { mean: ms, p50: ms, p90: ms, p99: ms, max: ms },
      errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
      cpu: { client, server, other: Math.max(0, machine - client - server), machine },
      extra: (a1 - a0) / seconds,
    }
  } finally {
    await agent.close()
  }
}

async function machineTicks(): Promise<{ busy: number }> {
  const v = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  return { busy: v.slice(0, 8).reduce((a, b) => a + b, 0) - v[3]! - v[4]! }
}
