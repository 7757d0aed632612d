import net from 'node:net'
import { blockListBytes, firstBadBlock } from '../../lib/integrity/block-hasher.js'
import { BLOCK_LIST, WANT_BLOCK_LIST } from '../../lib/integrity/block-list-header.js'

/**
 * `node dist/bench/lib/bare-relay.js SHARD_URL TOKEN SIZE PATH...`: the least
 * work a verifying fill does, in Node, run as its own process in the fill row
 * (since stop 38), a yardstick for the cold edge's rate.
 *
 * Why: the fill row's goal reads an edge's fill against a shard's own read,
 * and on a 2-core machine the edge, the shard and the client share the cores.
 * How much of the gap is the edge's own, and how much a relay on this machine
 * shows anyway, needs a relay that does only what a fill cannot leave out:
 * read the shard's bytes, check each 64 KiB block's CRC32C against the
 * chunk's block list, and write them on. Nothing else: no cache, no disk,
 * no HTTP framework, no failover, no metrics, no logging.
 *
 * Theory of operation. A plain TCP server. Each GET, whatever its path,
 * answers 200 with Content-Length SIZE and the bytes of every PATH in turn,
 * read from the shard at SHARD_URL (Bearer TOKEN) one GET at a time on a
 * connection of the player's own, with the block list asked for in the
 * answer's head (`WANT_BLOCK_LIST`, as an edge's fill asks). A body is read
 * with the socket's `onread` straight into 1 MiB blocks (eight per process,
 * faulted in at start and reused); each filled block has its 64 KiB blocks
 * checked against the list, then goes to the player with one write, and
 * comes back to the free list once that write's callback ran. With one block
 * left free, the shard's socket pauses until the player takes one. A block
 * that fails its check, an answer that is not a 200 with a Content-Length
 * and a list, bodies that come to more or less than SIZE, or a shard that
 * goes away ends the player's connection early (the bytes written before go
 * out) and is printed to stderr: the row then fails with a cut body, which
 * is what it should do. A player that leaves ends its shard connection. The
 * next GET on a player's connection is read once the last answer went out
 * (a GET sent before that is not read: the bench sends none).
 *
 * One player at a time, as the bench reads: a player that connects while
 * another is served waits, unread, until that one's connection has closed.
 * That is what keeps the blocks safe to share: every block is in one place
 * at a time (the free list, a relay's block being filled, or a write in
 * flight), and Node runs a socket's pending write callbacks, which hand its
 * blocks back, before its 'close', after which the next player starts.
 */
const [shardUrl, token, sizeArg, ...paths] = process.argv.slice(2)
const SIZE = Number(sizeArg)
if (!shardUrl || !token || !Number.isSafeInteger(SIZE) || SIZE < 0 || paths.length === 0) {
  process.stderr.write('usage: bare-relay.js SHARD_URL TOKEN SIZE PATH... (SIZE: the bytes of all PATHs\' bodies together)\n')
  process.exit(2)
}
const BLOCK = 1 << 20
const HEAD_MAX = 16 * 1024
/** the block list's field in a shard's answer head */
const LIST_FIELD = new RegExp(`\\r\\n${BLOCK_LIST}: *([A-Za-z0-9+/=]*)`, 'i')
const shard = new URL(shardUrl)
/** the process's blocks, faulted in now (fill), not by the first measured read */
const free: Buffer[] = Array.from({ length: 8 }, () => Buffer.allocUnsafeSlow(BLOCK).fill(0))
let busy = false
const players = new Set<net.Socket>()
/** players connected while another was served, in order */
const waiting: net.Socket[] = []

/** One player's relay: the shard connection it reads through, and where in the current body it is. */
class Relay {
  private readonly scratch = Buffer.allocUnsafeSlow(HEAD_MAX)
  private readonly up: net.Socket
  private head = Buffer.alloc(0)
  /** body bytes still to come; -1 while the head is read */
  private left = -1
  private crcs = Buffer.alloc(0)
  /** the block being filled, how far, and the body offset it starts at */
  private cur: Buffer | undefined
  private pos = 0
  private at = 0
  private path = ''
  private relayed = 0
  private bodyDone: ((ok: boolean) => void) | undefined
  private resumeWhenFree = false
  private over = false

  constructor(private readonly player: net.Socket) {
    this.up = net.connect({ host: shard.hostname, port: Number(shard.port || 80), noDelay: true, onread: {
      buffer: () => this.target(),
      callback: (n: number, buf: Uint8Array) => { this.landed(n, buf as Buffer); return true },
    } })
    this.up.on('error', err => this.fail(`the shard connection: ${err.message}`))
    this.up.on('close', () => { if (this.bodyDone) this.fail('the shard closed the connection before the body\'s end') })
  }

  /** Relays every PATH; true when all of SIZE went out. */
  async run(): Promise<boolean> {
    this.player.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${SIZE}\r\n\r\n`)
    for (const path of paths) {
      this.path = path
      const ok = await new Promise<boolean>(resolve => {
        this.bodyDone = resolve
        this.left = -1
        this.up.write(`GET ${path} HTTP/1.1\r\nhost: ${shard.host}\r\nauthorization: Bearer ${token}\r\n${WANT_BLOCK_LIST}: 1\r\n\r\n`)
      })
      if (!ok) return false
    }
    this.up.destroy()
    if (this.relayed !== SIZE) return this.fail(`the bodies came to ${this.relayed} bytes, not SIZE (${SIZE})`)
    return true
  }

  /** The player left, or the relay failed: nothing more is read or written. */
  stop(): void {
    this.over = true
    if (this.cur) free.push(this.cur)
    this.cur = undefined
    this.up.destroy()
    this.end(false)
  }

  private target(): Buffer {
    if (this.left <= 0 || this.over) return this.scratch
    this.cur ??= free.pop()
    if (this.cur === undefined) throw new Error('no block free for a read (the shard was not paused)')
    return this.cur.subarray(this.pos, Math.min(BLOCK, this.pos + this.left))
  }

  private landed(n: number, buf: Buffer): void {
    if (this.over) return
    if (this.left < 0) return this.headIn(buf.subarray(0, n))
    this.pos += n
    this.left -= n
    if (this.pos === BLOCK || this.left === 0) this.blockFull()
  }

  private headIn(bytes: Buffer): void {
    this.head = Buffer.concat([this.head, bytes])
    const end = this.head.indexOf('\r\n\r\n')
    if (end < 0) return void (this.head.length > HEAD_MAX && this.fail('a shard answer head over 16 KiB'))
    const text = this.head.subarray(0, end).toString('latin1')
    const rest = this.head.subarray(end + 4)
    this.head = Buffer.alloc(0)
    const length = /\r\ncontent-length: *(\d+)/i.exec(text)
    const list = LIST_FIELD.exec(text)
    if (!text.startsWith('HTTP/1.1 200') || !length || !list) return void this.fail(`the shard answered: ${text.slice(0, 200)}`)
    this.left = Number(length[1])
    this.crcs = Buffer.from(list[1]!, 'base64')
    this.at = 0
    if (this.crcs.length !== blockListBytes(this.left)) return void this.fail(`a block list of the wrong length for ${this.path}`)
    if (rest.length > this.left) return void this.fail(`bytes past the body of ${this.path}`)
    if (this.relayed + this.left > SIZE) return void this.fail(`the bodies come to more than SIZE (${SIZE}) with ${this.path}`)
    if (this.left === 0) return this.end(true)
    if (rest.length > 0) {
      // body bytes that came with the head: into the first block
      this.cur ??= free.pop()!
      rest.copy(this.cur)
      this.pos = rest.length
      this.left -= rest.length
      if (this.pos === BLOCK || this.left === 0) this.blockFull()
    }
  }

  private blockFull(): void {
    const block = this.cur!
    const len = this.pos
    const bad = firstBadBlock(this.crcs, block.subarray(0, len), this.at)
    if (bad >= 0) return void this.fail(`block ${bad} of ${this.path} failed its CRC32C`)
    this.at += len
    this.relayed += len
    this.cur = undefined
    this.pos = 0
    this.player.write(len === BLOCK ? block : block.subarray(0, len), () => {
      free.push(block)
      if (this.resumeWhenFree) {
        this.resumeWhenFree = false
        this.up.resume()
      }
    })
    if (free.length <= 1 && !this.resumeWhenFree) {
      // the one left is for the read `target` names next; none more until the player takes a block
      this.up.pause()
      this.resumeWhenFree = true
    }
    if (this.left === 0) this.end(true)
  }

  private end(ok: boolean): void {
    const done = this.bodyDone
    this.bodyDone = undefined
    done?.(ok)
  }

  private fail(why: string): false {
    if (!this.over) process.stderr.write(`bare relay: ${why}\n`)
    this.stop()
    // what was written goes out, then the close (before the Content-Length's end: a cut); a player that reads nothing is cut later
    this.player.end()
    setTimeout(() => this.player.destroy(), 10_000).unref()
    return false
  }
}

const server = net.createServer({ noDelay: true }, player => {
  player.on('error', () => {})
  players.add(player)
  player.once('close', () => players.delete(player))
  if (busy) {
    player.pause()
    waiting.push(player)
    return
  }
  serve(player)
})

function serve(player: net.Socket): void {
  busy = true
  let relay: Relay | undefined
  player.once('close', () => {
    relay?.stop()
    busy = false
    const next = waiting.shift()
    if (next) serve(next)
  })
  let head = ''
  const onData = (d: Buffer) => {
    head += d.toString('latin1')
    if (!head.includes('\r\n\r\n')) return void (head.length > HEAD_MAX && player.destroy())
    head = ''
    player.off('data', onData)
    const r = relay = new Relay(player)
    void r.run().then(ok => { if (ok && !player.destroyed) player.on('data', onData) })
  }
  player.on('data', onData)
  player.resume()
}
server.listen(0, '127.0.0.1', () => {
  const a = server.address() as net.AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'bare relay ready', url: `http://127.0.0.1:${a.port}` })}\n`)
})
// SIGTERM: no new players, the one connected cut (which ends its shard connection), then the process ends by itself
process.once('SIGTERM', () => {
  server.close()
  waiting.length = 0
  for (const p of players) p.destroy()
})
