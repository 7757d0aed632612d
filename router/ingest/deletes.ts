import { ConflictError } from '../../lib/errors.js'

/**
 * The DELETEs of titles running on this router, as uploads see them
 * (router/server.ts `deleteTitle`; router/ingest/ingest.ts, publish.ts).
 *
 * Why: a DELETE removes the title's manifest first, then its chunks, a few
 * at a time. An upload of the same bytes meanwhile takes the same version
 * (it comes from the digest), finds the chunks not deleted yet, counts them
 * as stored and publishes a manifest whose chunks the DELETE then removes:
 * acknowledged, and unreadable. So an upload takes a mark when it arrives
 * and checks it again right before it publishes (or answers a rendition
 * stored): a DELETE of its title running then, or one that started since
 * the mark, makes it a 409, to be sent again once the DELETE has answered.
 * Only this router's DELETEs are seen: routers do not share them.
 */
export class TitleDeletes {
  /** DELETEs running, per title */
  private readonly running = new Map<string, number>()
  /** DELETEs started, per title, ever (a title's count only grows; a few bytes per title deleted) */
  private readonly started = new Map<string, number>()

  begin(contentId: string): void {
    this.running.set(contentId, (this.running.get(contentId) ?? 0) + 1)
    this.started.set(contentId, (this.started.get(contentId) ?? 0) + 1)
  }

  end(contentId: string): void {
    const n = (this.running.get(contentId) ?? 1) - 1
    if (n > 0) this.running.set(contentId, n)
    else this.running.delete(contentId)
  }

  /** An upload arrives (before it looks at what is published): a 409 if a DELETE of its title runs; else the mark `check` compares against. */
  arrive(contentId: string): number {
    const mark = this.started.get(contentId) ?? 0
    this.check(contentId, mark)
    return mark
  }

  /** A 409 if a DELETE of the title runs now, or started since `mark` (the arrival's). */
  check(contentId: string, mark: number): void {
    if (this.running.has(contentId) || (this.started.get(contentId) ?? 0) !== mark)
      throw new ConflictError(`title ${contentId} is being deleted: upload it again once its DELETE has answered`)
  }
}
