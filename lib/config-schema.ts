import { z } from 'zod'

/**
 * The shape of every setting. `config/default.json` holds the values; this file
 * holds what is allowed. Units live in the names (`Ms`, `Bytes`, `MBps`).
 */
const port = z.number().int().min(0).max(65535)
const ms = z.number().int().min(0).max(24 * 3600 * 1000)
const positive = z.number().int().positive()
const bytes = z.number().int().min(0)

export const configSchema = z.object({
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    /** one JSON line per request; off by default to keep the byte path bare */
    requests: z.boolean(),
  }).strict(),
  http: z.object({
    headersTimeoutMs: ms.min(1),
    requestTimeoutMs: ms,
    keepAliveTimeoutMs: ms,
    maxHeaderBytes: positive.min(1024).max(1024 * 1024),
    maxConnections: positive,
    maxRanges: positive.max(1000),
    shutdownGraceMs: ms,
  }).strict(),
  cluster: z.object({
    chunkSize: positive.min(65536).max(1024 ** 3).refine(n => n % 65536 === 0, 'must be a multiple of 65536'),
  }).strict(),
  origin: z.object({
    host: z.string().min(1),
    port,
    dataDir: z.string().min(1),
    reserveBytes: bytes,
    maxManifestBytes: positive.max(64 * 1024 ** 2),
    memoryCacheBytes: bytes,
    readSize: positive.min(65536).max(16 * 1024 ** 2).refine(n => n % 65536 === 0, 'must be a multiple of 65536'),
    scrubRateMBps: z.number().min(0),
    scrubIdleMs: ms,
    tokenFile: z.string(),
  }).strict(),
  edge: z.object({
    host: z.string().min(1),
    port,
    /** the router's base URL; chunk and meta paths are appended to it */
    upstream: z.string().refine(isHttpUrl, 'an http:// or https:// URL'),
    upstreamTokenFile: z.string(),
    adminTokenFile: z.string(),
    dataDir: z.string().min(1),
    /** RAM tier; 0 turns it off */
    ramBytes: bytes,
    /** disk tier; 0 turns it off */
    diskBytes: bytes,
    ramPolicy: z.enum(['lru']),
    diskPolicy: z.enum(['lru']),
    metaTtlMs: ms,
    metaNegativeTtlMs: ms,
    metaMaxEntries: positive,
    /** chunks fetched ahead of the one a player reads; 0 turns readahead off */
    readaheadChunks: z.number().int().min(0).max(16),
    /** chunk fills in flight at once, each holding one chunk in RAM until it is cached */
    maxFills: positive.max(1024),
    fillTimeoutMs: ms.min(1),
    /** a reader further than this ahead of a fill's progress gets its own ranged upstream fetch */
    fillSplitBytes: positive,
    maxFillSegments: positive.max(64),
    upstreamConnections: positive.max(4096),
    upstreamHeadersTimeoutMs: ms.min(1),
    upstreamIdleTimeoutMs: ms.min(1),
    readSize: positive.min(65536).max(16 * 1024 ** 2).refine(n => n % 65536 === 0, 'must be a multiple of 65536'),
    /** verified chunks waiting for the disk; past it, a chunk is kept in RAM only */
    diskWriteQueue: positive.max(1024),
    /** chunk files kept open between reads (each holds a file descriptor and the chunk's block CRCs) */
    openFiles: z.number().int().min(0).max(65536),
    /** disk-to-RAM promotions in flight at once */
    promotions: z.number().int().min(0).max(64),
    accessFlushMs: ms.min(1),
    /** a response that cannot send for this long is cut, so a stalled player cannot pin memory forever */
    sendStallTimeoutMs: ms.min(1),
    /** Access-Control-Allow-Origin for player routes: '*' or one origin */
    corsOrigin: z.string().min(1),
  }).strict(),
}).strict()

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s)
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.search && !u.hash
  } catch {
    return false
  }
}

export type Config = z.infer<typeof configSchema>
