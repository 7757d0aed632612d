import { request } from 'undici'
import type { Logger } from '../../lib/logger.js'
import { signToken, type KeyRing } from '../../lib/security/tokens.js'
import type { Position } from './sessions.js'

/**
 * Playback state across routers. A position report is stored by the router it
 * reached (router/playback/sessions.ts); behind a load balancer a viewer's reports land
 * on any router. A lookup (resume in /v1/play, GET /v1/sessions/{id},
 * GET /v1/history) therefore asks this router's store and every peer
 * (router.peers, the same list trending exchanges with) for what they hold,
 * in parallel, and the latest report (largest `updatedAt`) wins:
 *   - no state lives only on one router in a way that matters: a router that
 *     is down or restarted misses from the answer only the reports it alone
 *     received, and its SQLite file gives them back when it returns;
 *   - peers answer from their own store only (`?local=1`), so a lookup costs
 *     one round to each peer and never recurses;
 *   - a peer is asked with a play token this router signs for the same viewer
 *     and title (all routers share the token keys), not the client's token,
 *     which may be bound to the client's network; a peer that is slow
 *     (`timeoutMs`) or failing is left out of the answer and logged;
 *   - comparing `updatedAt` across routers assumes their clocks agree to
 *     better than the reporting interval (NTP).
 */
export class SessionPeers {
  constructor(private readonly peers: readonly string[], private readonly ring: () => KeyRing, private readonly timeoutMs: number,
    private readonly logger: Logger) {}

  get enabled(): boolean {
    return this.peers.length > 0
  }

  /** The latest of `local` and every peer's position of the viewer in the title. */
  async position(viewer: string, contentId: string, local: Position | undefined, now: number): Promise<Position | undefined> {
    if (!this.enabled) return local
    const token = this.token(viewer, contentId, now)
    const answers = await Promise.all(this.peers.map(p => this.ask(p, `/v1/sessions/${encodeURIComponent(contentId)}?local=1`, token,
      body => (isPosition(body) && body.contentId === contentId ? [plain(body)] : undefined))))
    return latest([local, ...answers.flat()])
  }

  /** The viewer's history merged over every router: one entry per title (its latest report), most recent first. */
  async history(viewer: string, anyContentId: string, local: Position[], limit: number, now: number): Promise<Position[]> {
    if (!this.enabled) return local
    const token = this.token(viewer, anyContentId, now)
    const answers = await Promise.all(this.peers.map(p => this.ask(p, '/v1/history?local=1', token, body => {
      const h = (body as { history?: unknown }).history
      return Array.isArray(h) && h.every(isPosition) ? h.map(plain) : undefined
    })))
    const byTitle = new Map<string, Position>()
    for (const p of [...local, ...answers.flat()]) {
      const have = byTitle.get(p.contentId)
      if (!have || p.updatedAt > have.updatedAt) byTitle.set(p.contentId, p)
    }
    return [...byTitle.values()].sort((a, b) => b.updatedAt - a.updatedAt).slice(0, limit)
  }

  private token(viewer: string, contentId: string, now: number): string {
    return signToken(this.ring(), { cid: contentId, vid: viewer, exp: Math.floor(now / 1000) + 60 })
  }

  private async ask(peer: string, path: string, token: string, parse: (body: unknown) => Position[] | undefined): Promise<Position[]> {
    try {
      const res = await request(`${peer.replace(/\/+$/, '')}${path}`, {
        headers: { authorization: `Bearer ${token}` }, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs) })
      if (res.statusCode === 404) {
        await res.body.dump()
        return []
      }
      if (res.statusCode !== 200) {
        await res.body.dump()
        throw new Error(`answered ${res.statusCode}`)
      }
      const got = parse(await res.body.json())
      if (!got) throw new Error('answered something other than playback state')
      return got
    } catch (err) {
      this.logger.warn({ peer, err: (err as Error).message }, 'session lookup at a peer router failed')
      return []
    }
  }
}

function isPosition(x: unknown): x is Position {
  const p = x as Position
  return typeof p === 'object' && p !== null && typeof p.contentId === 'string' && Number.isSafeInteger(p.position) && p.position >= 0 &&
    Number.isSafeInteger(p.size) && Number.isFinite(p.updatedAt)
}

const plain = (p: Position): Position => ({ contentId: p.contentId, position: p.position, size: p.size, updatedAt: p.updatedAt })

/** The position with the largest updatedAt; the first of equals (this router's own comes first). */
export function latest(ps: (Position | undefined)[]): Position | undefined {
  let best: Position | undefined
  for (const p of ps) if (p && (!best || p.updatedAt > best.updatedAt)) best = p
  return best
}
