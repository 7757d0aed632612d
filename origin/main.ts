import { Command } from 'commander'
import { addFlags, commonFlags, configFromFlags, runUntilSignalled, type Flag } from '../lib/cli.js'
import { join } from 'node:path'
import type { Config } from '../lib/config/config.js'
import { serviceLogger, type Logger } from '../lib/logger.js'
import { newRegistry } from '../lib/metrics.js'
import { loadSecret } from '../lib/security/auth.js'
import { ensureWritableDir, ensureWritableSubdirs } from '../lib/storage/data-dir.js'
import { ChunkIndex } from './chunk-index.js'
import { ChunkStore } from './chunk-store.js'
import { OriginServer } from './server.js'
import { recover } from './recovery.js'
import { Scrubber } from './scrubber.js'

/**
 * Starts one origin shard: check that its data dir takes writes, open the
 * index, reconcile it with the disk, listen, then report ready. `close()` drains HTTP, stops the scrubber and closes
 * SQLite, in that order.
 */
export interface RunningOrigin {
  url: string
  port: number
  server: OriginServer
  scrubber: Scrubber
  index: ChunkIndex
  store: ChunkStore
  close(): Promise<void>
}

export async function startOrigin(config: Readonly<Config>, opts: { logger?: Logger; env?: NodeJS.ProcessEnv } = {}): Promise<RunningOrigin> {
  const logger = opts.logger ?? serviceLogger('origin', config.log)
  const cfg = config.origin
  await ensureWritableDir(cfg.dataDir, 'the shard\'s data dir')
  const store = new ChunkStore(cfg.dataDir)
  await store.init()
  for (const d of [store.chunksDir, store.tmpDir, store.quarantineDir]) await ensureWritableDir(d, 'the shard\'s data dir')
  await ensureWritableSubdirs(store.chunksDir, 'the shard\'s title directory')
  const index = new ChunkIndex(join(cfg.dataDir, 'index.sqlite'))
  try {
    const token = loadSecret(cfg.tokenFile, 'REELCDN_SHARD_TOKEN', opts.env)
    const registry = newRegistry('origin', opts.logger === undefined)
    const server = new OriginServer({ config, logger, registry, index, store, token })
    const report = await recover(index, store, logger)
    for (const [action, n] of Object.entries(report)) if (n) server.metrics.recovered.inc({ action }, n)
    const scrubber = new Scrubber(index, store, server.metrics, logger,
      { rateMBps: cfg.scrubRateMBps, idleMs: cfg.scrubIdleMs, pieceBytes: cfg.readSize },
      (row, err) => server.markCorrupt(row, err, 'scrub'))
    const addr = await server.http.listen(cfg.port, cfg.host)
    server.setReady(true)
    server.console.ring.start()
    scrubber.start()
    if (token === undefined && cfg.insecureOpenWrites)
      logger.warn('no shard token and origin.insecureOpenWrites: anyone who reaches this shard can write and delete chunks and manifests')
    else if (token === undefined)
      logger.warn('no shard token (REELCDN_SHARD_TOKEN or origin.tokenFile): chunk and manifest writes and deletes are refused (401); reads are open')
    if (token !== undefined && cfg.id === '')
      logger.warn('no origin.id: this shard refuses every fill grant, so edges fill its chunks through the router (set origin.id to its id in cluster.shards)')
    logger.info({ url: server.http.url, dataDir: cfg.dataDir, recovery: report, writesNeedToken: !(token === undefined && cfg.insecureOpenWrites) },
      'origin shard ready')
    let closing: Promise<void> | undefined
    return {
      url: server.http.url, port: addr.port, server, scrubber, index, store,
      close: () => closing ??= (async () => {
        server.setReady(false)
        server.console.ring.stop()
        await server.http.close()
        await scrubber.stop()
        server.reader.close()
        index.close()
      })(),
    }
  } catch (err) {
    index.close()
    throw err
  }
}

export const originFlags: Flag[] = [
  { flags: '--id <id>', path: 'origin.id', kind: 'string', description: 'this shard\'s id in cluster.shards: it accepts only the fill grants signed for it (empty: none)' },
  { flags: '--host <addr>', path: 'origin.host', kind: 'string', description: 'address to listen on' },
  { flags: '-p, --port <n>', path: 'origin.port', kind: 'int', description: 'TCP port (0 picks a free one)' },
  { flags: '-d, --data-dir <dir>', path: 'origin.dataDir', kind: 'string', description: 'where chunk files and the SQLite index live' },
  { flags: '--chunk-size <bytes>', path: 'cluster.chunkSize', kind: 'bytes', description: 'largest chunk accepted; the cluster-wide chunk size' },
  { flags: '--reserve <bytes>', path: 'origin.reserveBytes', kind: 'bytes', description: 'free space kept on the disk: a PUT that would go below it gets 507' },
  { flags: '--memory-cache <bytes>', path: 'origin.memoryCacheBytes', kind: 'bytes', description: 'RAM for verified chunk segments (0 turns it off)' },
  { flags: '--read-size <bytes>', path: 'origin.readSize', kind: 'bytes', description: 'disk read and cache segment size, a multiple of 64KiB' },
  { flags: '--scrub-rate <MBps>', path: 'origin.scrubRateMBps', kind: 'number', description: 'background re-verification rate, 0 turns it off', unit: 'MB/s' },
  { flags: '--insecure-open-writes', path: 'origin.insecureOpenWrites', kind: 'bool', description: 'without a shard token, take writes and deletes from anyone (tests on loopback only; without it they are refused)' },
  ...commonFlags,
]

export function originCommand(): Command {
  const cmd = new Command('origin')
    .summary('run an origin shard server')
    .description('Run an origin shard: it stores chunks on disk with a SQLite index, verifies every read, ' +
      'scrubs in the background, and serves the chunk API the router uses. ' +
      'The bearer token comes from REELCDN_SHARD_TOKEN or origin.tokenFile, never from a flag; with it every /v1 route ' +
      'needs it, without it reads are open and writes and deletes are refused unless --insecure-open-writes.')
  addFlags(cmd, originFlags)
  cmd.action(() => runUntilSignalled(() => startOrigin(configFromFlags(cmd, originFlags))))
  return cmd
}
