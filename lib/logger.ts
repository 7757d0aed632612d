import { closeSync, openSync } from 'node:fs'
import { pino, type DestinationStream, type Logger } from 'pino'
import { ConfigError } from './errors.js'

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

/**
 * The logger of a service started from the CLI: stdout (what journald takes
 * under systemd, and a container runtime), or `log.file` when one is set.
 *
 * A log file is opened for appending and reopened by name on SIGUSR1, so
 * logrotate can rename it and signal (`postrotate ... kill -USR1`), nothing
 * lost and no copytruncate. One destination per path: `reelcdn cluster`'s
 * services share it. The signal's handler is installed by every service
 * logger, file or not, because Node opens its inspector (a debugger on
 * 127.0.0.1:9229, which runs any code) on a SIGUSR1 no one listens for.
 */
const files = new Map<string, ReturnType<typeof pino.destination>>()
let listening = false

export function serviceLogger(service: string, log: { level: string; file: string }): Logger {
  listenForReopen()
  return createLogger(service, log.level, log.file ? logFile(log.file) : undefined)
}

function logFile(path: string): DestinationStream {
  let dest = files.get(path)
  if (dest) return dest
  // opened once here, synchronously, so a path the service cannot write fails its start by name
  try {
    closeSync(openSync(path, 'a', 0o640))
  } catch (err) {
    throw new ConfigError(`cannot open log.file ${path}: ${(err as Error).message}`)
  }
  dest = pino.destination({ dest: path, sync: false, append: true })
  // a failed reopen (the directory gone) must not kill the service: say so where systemd still looks
  dest.on('error', (err: Error) => process.stderr.write(`reelcdn: log file ${path}: ${err.message}\n`))
  files.set(path, dest)
  return dest
}

/** Reopens every log file by name (what SIGUSR1 does), then writes a line into each new file. */
export function reopenLogFiles(): void {
  for (const [path, dest] of files) {
    dest.reopen()
    pino({ base: { service: 'log', pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest).info({ file: path }, 'log file reopened')
  }
}

function listenForReopen(): void {
  if (listening) return
  listening = true
  process.on('SIGUSR1', reopenLogFiles)
}
