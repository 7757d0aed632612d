import type { ServerResponse } from 'node:http'
import { ClientClosedError } from '../lib/errors.js'

/**
 * Writing to a player with backpressure: a piece is handed to the socket, and
 * when the socket's buffer is full we wait for 'drain' before the next one, so
 * a slow player slows only itself and the edge buffers at most one piece per
 * response. A player that stops reading altogether is cut after `stallMs`,
 * which releases the Buffer it pins.
 */
export type Send = (res: ServerResponse, piece: Buffer) => Promise<void>

export interface SendHooks {
  /** a response is cut for stalling */
  stalled(): void
  /** +1 when a response starts waiting for its player to read, -1 when it stops */
  blocked(delta: number): void
}

export function sender(stallMs: number, hooks: SendHooks): Send {
  return async (res, piece) => {
    if (res.destroyed) throw new ClientClosedError()
    if (!res.write(piece)) await drainedWithin(res, stallMs, hooks)
  }
}

function drainedWithin(res: ServerResponse, stallMs: number, hooks: SendHooks): Promise<void> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) return reject(new ClientClosedError())
    hooks.blocked(1)
    const done = (err?: Error) => {
      hooks.blocked(-1)
      clearTimeout(timer)
      res.off('drain', onDrain)
      res.off('close', onClose)
      if (err) reject(err)
      else resolve()
    }
    const onDrain = () => done()
    const onClose = () => done(new ClientClosedError())
    const timer = setTimeout(() => {
      hooks.stalled()
      done(new ClientClosedError(`the client read nothing for ${stallMs} ms`))
      res.destroy()
    }, stallMs)
    res.once('drain', onDrain)
    res.once('close', onClose)
  })
}
