import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { closeSync, openSync, readSync, writeSync } from 'node:fs'
import type { Test } from 'tap'
import { request } from 'undici'
import { loadConfig } from '../../lib/config/config.js'
import { quietLogger } from '../../lib/logger.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { startOrigin, type RunningOrigin } from '../../origin/main.js'

/**
 * Settings for a shard under test: port 0, a temp dir, no reserve, a quiet log, and no token with writes open
 * (origin.insecureOpenWrites: tests talk to it on loopback; test/regress/issue-14-10 checks the closed default).
 */
export function originConfig(dataDir: string, overrides: Record<string, unknown> = {}) {
  return loadConfig({
    env: {},
    overrides: { 'origin.port': 0, 'origin.dataDir': dataDir, 'origin.reserveBytes': 0, 'origin.scrubRateMBps': 0,
      'origin.insecureOpenWrites': true, 'log.level': 'silent', ...overrides } as never,
  })
}

export async function startTestOrigin(t: Test, overrides: Record<string, unknown> = {}, dataDir = t.testdir()): Promise<RunningOrigin> {
  const o = await startOrigin(originConfig(dataDir, overrides), { logger: quietLogger('origin') })
  t.teardown(() => o.close())
  return o
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

export function randomChunk(size: number): Buffer {
  return randomBytes(size)
}

export async function putChunk(base: string, id: string, index: number, body: Buffer, digest = sha256(body)) {
  const res = await request(`${base}/v1/chunks/${id}/${index}`, {
    method: 'PUT', body, headers: { 'content-digest': digestHeader(digest) },
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, json: text ? JSON.parse(text) : undefined }
}

export async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { method, headers })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, body }
}

/** A GET that sends `path` exactly as given: no URL normalisation of `..` or percent-escapes, as an attacker would. */
export function rawGet(base: string, path: string): Promise<{ status: number; body: Buffer }> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'GET' }, res => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** Flips one byte of a stored chunk file, as bit rot would. */
export function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+')
  const b = Buffer.alloc(1)
  readSync(fd, b, 0, 1, at)
  b[0] = b[0]! ^ 0xff
  writeSync(fd, b, 0, 1, at)
  closeSync(fd)
}

/** A pino destination that keeps every line a service writes, parsed. */
export function logSink(): { write(line: string): void; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = []
  return { lines, write: (line: string) => { for (const l of line.split('\n')) if (l) lines.push(JSON.parse(l)) } }
}

export { until } from './until.js'
