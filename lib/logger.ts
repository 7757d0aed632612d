import { pino, type DestinationStream, type Logger } from 'pino'

export type { Logger } from 'pino'

/**
 * One JSON line per event on stdout. Services log lifecycle and faults; request
 * lines only when `log.requests` is on, so the hit path stays bare by default.
 * Secrets never reach a log line: the redact list covers every header that
 * carries one. `dest` replaces stdout, so a test can read the lines a service writes.
 */
export function createLogger(service: string, level: string, dest?: DestinationStream): Logger {
  const options = {
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', 'token', '*.token'], censor: '[redacted]' },
  }
  return dest ? pino(options, dest) : pino(options)
}

/** For tests and tools: a logger that writes nothing unless REELCDN_TEST_LOG names a level. */
export function quietLogger(service: string): Logger {
  return createLogger(service, process.env.REELCDN_TEST_LOG ?? 'silent')
}
