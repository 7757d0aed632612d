import net from 'node:net'

/**
 * A TCP proxy in front of a server, to stand in for a process a test can
 * stall and kill -9 without spawning it. `hold(prefix)` stops reading from
 * each connection that starts a request with `prefix` (`'PUT /v1/chunks/'`):
 * its sender's writes back up, as to a server too busy to read, while other
 * requests pass. `open()` passes everything on again. `kill()` resets every
 * connection and stops listening (what clients see of a process killed with
 * -9: ECONNRESET, then refused connections); `revive()` listens again on the
 * same port. `received` counts bytes clients sent, passed on yet or not.
 */
export interface TcpGate {
  port: number
  received: number
  hold(prefix?: string): void
  open(): void
  kill(): Promise<void>
  revive(): Promise<void>
  close(): Promise<void>
}

interface Pair { down: net.Socket; up: net.Socket; kept: Buffer[] }

export async function tcpGate(port: number, target: number): Promise<TcpGate> {
  const pairs = new Set<Pair>()
  let holding: string | undefined
  let server: net.Server | undefined
  const gate: TcpGate = {
    port,
    received: 0,
    hold(prefix = '') {
      holding = prefix
    },
    open() {
      holding = undefined
      for (const p of pairs) {
        for (const b of p.kept.splice(0)) p.up.write(b)
        p.down.resume()
      }
    },
    async kill() {
      for (const p of pairs) { p.down.resetAndDestroy(); p.up.destroy() }
      pairs.clear()
      await new Promise<void>(r => { if (!server) r(); else server.close(() => r()); server = undefined })
    },
    async revive() {
      holding = undefined
      await listen()
    },
    close: () => gate.kill(),
  }
  const listen = () => new Promise<void>((resolve, reject) => {
    const s = net.createServer(down => {
      const up = net.connect(target, '127.0.0.1')
      const pair: Pair = { down, up, kept: [] }
      pairs.add(pair)
      const drop = () => { pairs.delete(pair); down.destroy(); up.destroy() }
      down.on('error', drop).on('close', drop)
      up.on('error', drop).on('close', drop)
      // by hand, not pipe(): pipe resumes a source on 'drain', which would undo a hold
      down.on('data', (d: Buffer) => {
        gate.received += d.length
        if (pair.kept.length || (holding !== undefined && d.subarray(0, holding.length).toString('latin1') === holding)) {
          pair.kept.push(d)
          down.pause()
          return
        }
        if (!up.write(d)) {
          down.pause()
          up.once('drain', () => { if (!pair.kept.length) down.resume() })
        }
      })
      down.on('end', () => up.end())
      up.pipe(down)
    })
    s.once('error', reject)
    s.listen(gate.port, '127.0.0.1', () => {
      gate.port = (s.address() as net.AddressInfo).port
      server = s
      resolve()
    })
  })
  await listen()
  return gate
}

/**
 * Puts a gate where shard i of a test cluster was (the router keeps its old
 * port) in front of the shard restarted elsewhere; closed at the test's end.
 */
export async function gateShard(t: { teardown(fn: () => unknown): void },
  c: { ports: number[]; stopShard(i: number): Promise<void>; startShard(i: number): Promise<unknown> }, i: number): Promise<TcpGate> {
  const port = c.ports[i]!
  await c.stopShard(i)
  c.ports[i] = 0
  await c.startShard(i)
  const g = await tcpGate(port, c.ports[i]!)
  t.teardown(() => g.close())
  return g
}
