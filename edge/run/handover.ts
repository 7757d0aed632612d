import type { Logger } from '../../lib/logger.js'

/**
 * The worker's side of an upgrade (edge/run/supervisor.ts has the whole
 * sequence). A worker started by the supervisor inherits the bound socket as
 * fd 3 (LISTEN_FD_ENV) and an IPC channel; one started for an upgrade
 * (HANDOVER_ENV) waits for `go` before it opens the data dir, which the worker
 * it replaces still holds until it has said `released`.
 */
export const LISTEN_FD_ENV = 'REELCDN_LISTEN_FD'
export const HANDOVER_ENV = 'REELCDN_HANDOVER'

export type ToSupervisor = { type: 'waiting' } | { type: 'ready' } | { type: 'released' }
export type ToWorker = { type: 'go' } | { type: 'release' }

/** The inherited listening socket's descriptor, if a supervisor started this process. */
export function inheritedFd(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env[LISTEN_FD_ENV]
  return raw && /^\d+$/.test(raw) && process.send !== undefined ? Number(raw) : undefined
}

/** Whether this worker takes over from another (it then warms its RAM tier from the disk tier it inherits). */
export function isHandover(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[HANDOVER_ENV] === '1' && process.send !== undefined
}

function tell(m: ToSupervisor): void {
  process.send?.(m)
}

/** An upgrade's new worker: says it is ready to take over, and resolves on `go` (the old worker has released the data dir). */
export function awaitGo(): Promise<void> {
  return new Promise(resolve => {
    const on = (m: ToWorker) => {
      if (m?.type !== 'go') return
      process.off('message', on)
      resolve()
    }
    process.on('message', on)
    tell({ type: 'waiting' })
  })
}

/**
 * A supervised worker that serves: says `ready`, and on `release` closes the
 * edge (`close(true)`: drain, no farewell heartbeat), says `released` and lets
 * the process end. The IPC channel is unref'd so it does not keep it alive.
 */
export function serveSupervised(edge: { close(handover?: boolean): Promise<void> }, logger: Logger): void {
  if (process.send === undefined) return
  process.on('message', (m: ToWorker) => {
    if (m?.type !== 'release') return
    logger.info('upgrade: releasing the socket and the data dir to the new worker')
    void edge.close(true).then(
      () => { tell({ type: 'released' }); process.disconnect?.() },
      err => { logger.error({ err: (err as Error).message }, 'upgrade: closing for the handover failed'); process.exitCode = 1; process.disconnect?.() })
  })
  // the supervisor has gone (killed): nothing would ever release this worker, so it drains and ends
  process.once('disconnect', () => void edge.close().catch(() => {}))
  tell({ type: 'ready' })
  ;(process as unknown as { channel?: { unref(): void } }).channel?.unref()
}
