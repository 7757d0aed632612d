import type { ServerResponse } from 'node:http'
import { peerGone, sendPages, spliceFd, zeroCopyable } from '../../lib/net/zero-copy.js'

/**
 * Sharing the event loop among large hits (issue 16). A RAM hit is one
 * subarray of a cached chunk, ended in one write. Ended whole, a 2 MiB range
 * is one writev that copies 2 MiB into the kernel before the loop moves on;
 * with 200 players asking at once, one loop turn ran a hundred of those (the
 * edge's event-loop delay reached 300 ms at p99 under the tail row). And a
 * turn accepts one new connection at most (libuv 1.46 accepts once per
 * readable event on the listening socket): 200 players connecting took 200
 * of those turns, seconds, while the players already accepted were served
 * back to back. That was the tail: the median lower than nginx's, the p99
 * three times higher.
 *
 * So a response larger than a slice goes out in slices: its first slice with
 * the headers at once (so its first byte is not delayed), unless the requests
 * read in the same poll have already written a turn's budget (a hundred
 * players asking at once: their first slices alone would make a long turn),
 * the rest from a
 * round-robin queue that this module drains in setImmediate turns, at most
 * `turnBytes` per turn, one slice per response per pass. Between turns the
 * loop polls: it accepts, reads requests and answers their first slices. A
 * response whose socket is full leaves the queue until its 'drain' (so a slow
 * player never holds a turn), and one cut meanwhile (destroyed) is dropped at
 * its next visit. The queue holds what `end` was given (a subarray of a
 * cached Buffer, never copied) and nothing else.
 *
 * Accepts come first. Turns of 8 MiB still left the accept queue slow:
 * libuv takes one connection per turn, and a turn that copies 8 MiB takes a
 * few milliseconds, so 200 players connecting at once waited up to a second
 * for their turn to be accepted while the players already accepted were
 * served (measured with a bare node:http server: 82 of 200 connections
 * accepted after half a second). Their first requests were the p99. So the
 * queue's turn that follows an accepted connection (`accepted()`, from the
 * 'connection' event of every server that answers through this queue) writes
 * `acceptTurnBytes` only: the loop comes back to the listening socket within
 * a fraction of a millisecond while more connections may be waiting, and the
 * next turn without an accept has the whole budget again. First slices keep
 * their own budget, so a request read while players connect still has its
 * first byte at once (players that open a connection per request, as ffmpeg
 * does on every seek, keep their first byte). A turn after an accept still
 * writes at least a slice, so a flood of connections (one a turn at most,
 * under http.maxConnections) costs the queued players loop turns' overhead,
 * not their progress.
 *
 * Zero-copy slices (`zeroCopy`). A piece in memory the splice addon
 * allocated (lib/net/zero-copy.ts: the chunk arena's slots on an edge without
 * serve threads) to a plain TCP socket goes out without a copy: its headers
 * and first `PROBE_BYTES` are written as usual, and once the kernel has them
 * (the write's callback) each visit splices a slice's pages into the socket.
 * Splicing is only done while Node holds nothing for the socket
 * (writableLength 0), so no byte overtakes another. When the socket is full
 * (it took fewer bytes than asked), the response writes one probe's worth the
 * usual way and waits for that write's callback, which libuv calls once the
 * socket took it: that is how a spliced response learns the socket has room
 * again, since nothing else tells it. A splice that fails (the player is
 * gone) destroys the socket, as a failed write would.
 *
 * Shared by the main thread and the serve threads (edge/serve/send.ts), one
 * queue per thread: nothing here crosses threads.
 */
export interface SliceOptions {
  /** bytes written per response per pass; a piece at most this long is ended at once */
  sliceBytes: number
  /** bytes written per loop turn over all queued responses */
  turnBytes: number
  /** bytes the queue writes in a turn that follows an accepted connection (more may be waiting to be accepted); one slice if not given */
  acceptTurnBytes?: number
  /** splice pieces in zero-copy memory into plain TCP sockets (lib/net/zero-copy.ts) instead of copying them */
  zeroCopy?: boolean
  /** a splice failed for another reason than the player leaving (errno): that response, and every one after, is copied */
  spliceRefused?: (errno: number) => void
}

/** bytes copied the usual way before a spliced response's first splice, and each time its socket is found full */
export const PROBE_BYTES = 64 * 1024

// @NOTE tail row, 2 cores: a 1 MiB slice keeps the per-write cost (JS, syscall, 'drain') small next to its copy
// (256 KiB slices cost measurably more CPU per byte); 8 MiB a turn is a few milliseconds of copying, so a turn stays short
// a turn after an accept writes one slice: a fraction of a millisecond before the next accept
export const SLICES: SliceOptions = { sliceBytes: 1024 ** 2, turnBytes: 8 * 1024 ** 2, acceptTurnBytes: 1024 ** 2 }

/**
 * Spliced bytes bypass Node's framing, so only a body Node would send as it
 * is: headers stored (by writeHead or the first write), a known length (no
 * chunked encoding), and a body at all (not HEAD, 204 or 304). These are
 * ServerResponse's own fields (Node 20); were they ever renamed, this is
 * false and responses are copied, never mis-framed.
 */
function rawBody(res: ServerResponse): boolean {
  const r = res as ServerResponse & { _header?: unknown; chunkedEncoding?: unknown; _hasBody?: unknown }
  return typeof r._header === 'string' && r.chunkedEncoding === false && r._hasBody === true
}

interface Queued {
  res: ServerResponse
  piece: Buffer
  at: number
  written: (() => void) | undefined
  /** spliced (zero-copy memory to a plain TCP socket), not copied */
  zc: boolean
}

export class SliceQueue {
  private readonly ready: Queued[] = []
  private scheduled = false
  /** bytes `end` wrote at once since the last turn: first slices have a turn's budget of their own, per poll */
  private spent = 0
  private readonly acceptTurnBytes: number
  /** a connection was accepted since the last turn: this turn's budget is acceptTurnBytes */
  private accepting = false
  /** turns run, responses that waited for 'drain' in the queue, and accepts seen (for tests) */
  turns = 0
  drainWaits = 0
  accepts = 0
  /** bytes spliced, and bytes of spliced responses copied (their headers' write and probes) */
  splicedBytes = 0
  probeBytes = 0
  /** the errno of a splice that failed while the player was there: nothing is spliced after it */
  refused: number | undefined

  constructor(private readonly o: SliceOptions = SLICES) {
    if (!(o.sliceBytes > 0 && o.turnBytes >= o.sliceBytes)) throw new RangeError(`expected 0 < sliceBytes <= turnBytes, got ${o.sliceBytes} and ${o.turnBytes}`)
    this.acceptTurnBytes = o.acceptTurnBytes ?? o.sliceBytes
    if (!(this.acceptTurnBytes > 0 && this.acceptTurnBytes <= o.turnBytes)) throw new RangeError(`expected 0 < acceptTurnBytes <= turnBytes, got ${this.acceptTurnBytes} and ${o.turnBytes}`)
  }

  /** A connection was accepted (a server's 'connection' event): the next turn is short; a turn runs even if nothing is queued, to end it. */
  accepted(): void {
    this.accepting = true
    this.accepts++
    this.schedule()
  }

  /** Ends `res` with `piece` (headers set, not sent); `written` runs once its last byte was handed to the socket. */
  end(res: ServerResponse, piece: Buffer, written?: () => void): void {
    const slice = this.o.sliceBytes
    // spliced if its headers, once stored by the first write, frame a raw body (rawBody, checked at the first splice)
    const zc = this.o.zeroCopy === true && this.refused === undefined && piece.length > PROBE_BYTES && zeroCopyable(piece) && spliceFd(res.socket) !== undefined && res.req.method !== 'HEAD'
    const first = Math.min(zc ? PROBE_BYTES : slice, piece.length)
    if (this.spent + first > this.o.turnBytes) {
      // the requests read in this poll have had their budget: this one's first slice waits for the next turn
      this.enqueue({ res, piece, at: 0, written, zc })
      return
    }
    this.spent += first
    if (zc) {
      this.probe({ res, piece, at: 0, written, zc })
    } else if (piece.length <= slice) {
      if (written) res.end(piece, written)
      else res.end(piece)
    } else {
      res.write(piece.subarray(0, slice))
      this.enqueue({ res, piece, at: slice, written, zc })
    }
    // a turn restores the budget (and runs even when nothing is queued)
    this.schedule()
  }

  /** responses with bytes still queued here */
  get size(): number {
    return this.ready.length
  }

  private enqueue(q: Queued): void {
    this.ready.push(q)
    this.schedule()
  }

  private schedule(): void {
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.turn)
    }
  }

  private readonly turn = (): void => {
    this.scheduled = false
    this.turns++
    const slice = this.o.sliceBytes
    let budget = this.accepting ? this.acceptTurnBytes : this.o.turnBytes
    // the head is the response served longest ago: one slice each, round and round, until the budget is spent
    while (budget > 0 && this.ready.length > 0) {
      const q = this.ready.shift()!
      if (q.res.destroyed) continue
      if (q.zc) {
        budget -= this.splice(q)
        continue
      }
      if (q.res.writableNeedDrain) {
        this.drainWaits++
        q.res.once('drain', () => this.enqueue(q))
        continue
      }
      const end = Math.min(q.piece.length, q.at + slice)
      const s = q.piece.subarray(q.at, end)
      q.at = end
      budget -= s.length
      if (end < q.piece.length) {
        q.res.write(s)
        this.ready.push(q)
      } else if (q.written) {
        q.res.end(s, q.written)
      } else {
        q.res.end(s)
      }
    }
    // the next poll (accepts, requests, their first slices) gets a budget of its own
    this.spent = 0
    this.accepting = false
    if (this.ready.length > 0) this.schedule()
  }

  /** One visit of a spliced response: a slice's pages into its socket, or a probe when it cannot take them now. Returns the bytes sent. */
  private splice(q: Queued): number {
    if (q.at > 0 && !rawBody(q.res)) {
      // Node frames this body itself (chunked) or sends none: copied from here on
      q.zc = false
      this.ready.push(q)
      return 0
    }
    const sock = q.res.socket
    // before the headers are out, or while Node still holds bytes for the socket, pages would overtake them
    const fd = q.at > 0 && sock !== null && sock.writableLength === 0 ? spliceFd(sock) : undefined
    if (fd === undefined) return this.probe(q)
    const want = Math.min(this.o.sliceBytes, q.piece.length - q.at)
    const n = sendPages(fd, q.piece.subarray(q.at, q.at + want))
    if (n < 0 && peerGone(n)) {
      // the player is gone (EPIPE, ECONNRESET): what a failed write does
      sock!.destroy()
      return 0
    }
    if (n < 0) {
      // splicing refused here (no pipe, a sandbox): copied from here on, this response and the ones after
      this.refused = -n
      this.o.spliceRefused?.(-n)
      q.zc = false
      this.ready.push(q)
      return 0
    }
    q.at += n
    this.splicedBytes += n
    if (q.at === q.piece.length) {
      if (q.written) q.res.end(q.written)
      else q.res.end()
      return n
    }
    // the socket is full: a probe's callback says when it has room again
    if (n < want) return n + this.probe(q)
    this.ready.push(q)
    return n
  }

  /** Writes the next PROBE_BYTES of a spliced response the usual way (with its headers, the first time); its callback brings it back. */
  private probe(q: Queued): number {
    const end = Math.min(q.piece.length, q.at + PROBE_BYTES)
    const s = q.piece.subarray(q.at, end)
    q.at = end
    this.probeBytes += s.length
    if (end === q.piece.length) {
      if (q.written) q.res.end(s, q.written)
      else q.res.end(s)
    } else {
      q.res.write(s, err => { if (!err) this.enqueue(q) })
    }
    return s.length
  }
}
