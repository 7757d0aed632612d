import { spawn, type ChildProcess } from 'node:child_process'
import net, { isIPv6 } from 'node:net'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '../../lib/errors.js'
import type { Logger } from '../../lib/logger.js'
import { hugeMallocEnv } from '../../lib/malloc-tunables.js'
import { HANDOVER_ENV, LISTEN_FD_ENV, type ToSupervisor, type ToWorker } from './handover.js'

/**
 * `reelcdn edge --supervise`: upgrades without dropping players.
 *
 * Theory of operation. The supervisor is the process systemd (or any service
 * manager) runs; it serves nothing. It binds the edge's port once and never
 * listens or accepts on it itself: it hands the bound socket to a worker (a
 * `reelcdn edge` process, fd 3), which listens and serves. The socket stays
 * open as long as the supervisor lives, so between two workers connections
 * wait in the kernel's accept queue instead of being refused.
 *
 * An upgrade (SIGUSR2, after the new release is on disk):
 *   1. a new worker starts from the files on disk (the new code), loads and
 *      checks its config, and says `waiting` before it opens the data dir.
 *      If it exits first (a bad config, a broken build), the upgrade is
 *      abandoned and the running worker never noticed;
 *   2. the old worker is told `release`: it stops accepting (the socket stays
 *      listening through the supervisor's descriptor), lets in-flight
 *      responses finish (up to http.shutdownGraceMs), stops its fills, saves
 *      the disk tier's policy state and access order, closes its index, says
 *      `released` and exits;
 *   3. the new worker is told `go`: it opens the same data dir (the disk tier
 *      and the policy state carry over), listens on the socket, serves the
 *      queued connections, says `ready`, then reads the most recently used
 *      disk chunks back into its RAM tier.
 * Players see the time between 2 and 3 as latency, not as an error.
 * If the new worker dies after `go`, the supervisor exits with its code, as
 * it does whenever its worker exits on its own: the service manager restarts it.
 *
 * SIGHUP goes to the worker (a config reload, lib/reload.ts). A worker whose
 * supervisor has gone (its IPC channel closed) drains and exits. SIGTERM/SIGINT
 * go to every worker; the supervisor exits once the current one has, with
 * its exit code.
 */
interface Worker {
  /** told to release: its exit is the upgrade's, not the service's */
  released?: boolean
  child: ChildProcess
  exited: Promise<number>
  next(type: ToSupervisor['type']): Promise<boolean>
}

const cli = fileURLToPath(new URL('../../cli.js', import.meta.url))

/** Binds host:port without listening (so this process never accepts); returns the socket's descriptor and port. */
function bindOnly(host: string, port: number): { fd: number; port: number } {
  const create = (net as unknown as { _createServerHandle(a: string, p: number, t: number): number | { fd: number; getsockname(o: object): number } })._createServerHandle
  const h = create(host, port, isIPv6(host) ? 6 : 4)
  if (typeof h === 'number') throw new ConfigError(`cannot bind ${host}:${port} (errno ${h}): is the port in use?`)
  const out: { port?: number } = {}
  h.getsockname(out)
  return { fd: h.fd, port: out.port ?? port }
}

export async function superviseEdge(host: string, port: number, args: string[], logger: Logger): Promise<void> {
  const sock = bindOnly(host, port)
  const start = (handover: boolean): Worker => {
    const child = spawn(process.execPath, [...process.execArgv, cli, 'edge', ...args], {
      // huge pages for the worker's chunk memory (lib/malloc-tunables.ts): glibc reads them only at a process's start
      env: hugeMallocEnv({ ...process.env, [LISTEN_FD_ENV]: '3', [HANDOVER_ENV]: handover ? '1' : '' }),
      stdio: ['inherit', 'inherit', 'inherit', sock.fd, 'ipc'],
      // its own process group: a terminal's Ctrl-C reaches the supervisor alone, which passes it on once
      detached: true,
    })
    const exited = new Promise<number>(resolve => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))))
    // a message may come before anyone waits for it: remembered
    const seen = new Set<string>()
    const waiting = new Map<string, (ok: boolean) => void>()
    child.on('message', (m: ToSupervisor) => { seen.add(m?.type); waiting.get(m?.type)?.(true) })
    void exited.then(() => { for (const w of waiting.values()) w(false) })
    return { child, exited, next: type => seen.has(type) ? Promise.resolve(true) : new Promise(resolve => waiting.set(type, resolve)) }
  }
  const send = (w: Worker, m: ToWorker) => { if (w.child.connected) w.child.send(m) }

  let current = start(false)
  let upgrading: Worker | undefined
  let stopping = false
  logger.info({ worker: current.child.pid, port: sock.port }, 'edge supervisor: worker started')

  const upgrade = async () => {
    if (upgrading || stopping) return logger.warn('edge supervisor: an upgrade or a stop is in progress; SIGUSR2 ignored')
    const old = current
    const next = start(true)
    upgrading = next
    logger.info({ worker: next.child.pid }, 'edge supervisor: upgrade: new worker starting')
    if (!(await next.next('waiting'))) {
      upgrading = undefined
      return logger.error({ code: await next.exited }, 'edge supervisor: upgrade abandoned: the new worker exited before taking over; the running one stays')
    }
    const t0 = performance.now()
    old.released = true
    send(old, { type: 'release' })
    await Promise.race([old.next('released'), old.exited])
    current = next
    upgrading = undefined
    send(next, { type: 'go' })
    if (await next.next('ready')) {
      logger.info({ worker: next.child.pid, handoverMs: Math.round(performance.now() - t0) }, 'edge supervisor: upgraded: the new worker serves')
    }
  }

  process.on('SIGUSR2', () => void upgrade())
  process.on('SIGHUP', () => { current.child.kill('SIGHUP') })
  const stop = (sig: NodeJS.Signals) => {
    stopping = true
    for (const w of [current, upgrading]) w?.child.kill(sig)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))

  // the supervisor lives as long as its current worker; one that exits because it was released is replaced, not mourned
  for (;;) {
    const w = current
    const code = await w.exited
    if (w.released) {
      // the upgrade swaps `current` once it sees the release (or this exit): give it the turn
      if (w === current) await new Promise(r => setTimeout(r, 10))
      continue
    }
    process.exitCode = code
    if (!stopping) logger.error({ code }, 'edge supervisor: the worker exited; exiting with its code (the service manager restarts it)')
    upgrading?.child.kill('SIGTERM')
    return
  }
}
