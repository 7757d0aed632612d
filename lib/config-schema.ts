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
    /** more header fields than this: 431 */
    maxHeaders: positive.max(10_000),
    /** a longer request target: 414 */
    maxUrlBytes: positive.min(256).max(1024 * 1024),
    maxConnections: positive,
    maxRanges: positive.max(1000),
    shutdownGraceMs: ms,
    /** PEM files; both set: serve HTTPS */
    tlsCertFile: z.string(),
    tlsKeyFile: z.string(),
  }).strict().refine(h => !h.tlsCertFile === !h.tlsKeyFile, 'tlsCertFile and tlsKeyFile go together: set both or neither'),
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
}).strict()

export type Config = z.infer<typeof configSchema>
