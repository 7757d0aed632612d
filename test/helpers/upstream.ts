import type { Manifest } from '../../lib/manifest.js'
import { FakeUpstream } from './fake-upstream.js'
import type { TitleOptions } from './titles.js'

/**
 * What an edge system test needs from its upstream: somewhere to publish
 * titles and a URL (and token) to point the edge at. Tests that only use this
 * interface run against either the fake upstream (default) or, later, the real
 * router and origin shards; tests that inject faults or count upstream
 * requests per chunk use FakeUpstream directly.
 *
 * REELCDN_TEST_UPSTREAM=fake (default) | cluster
 * @TODO(lead) 'cluster': start three origin shards and the router in-process
 * on port 0 (router/main.ts), publish with PUT /v1/content/{id} and the admin
 * token, remove with DELETE; chunk sizes in these tests are multiples of 64 KiB
 * so the cluster's chunkSize can match (set cluster.chunkSize per title group).
 */
export interface ContentUpstream {
  readonly url: string
  /** the bearer token the edge must send, if any */
  readonly token: string | undefined
  addTitle(contentId: string, bytes: Buffer, opts: TitleOptions): Promise<Manifest>
  removeTitle(contentId: string): Promise<void>
  close(): Promise<void>
}

export interface HasTeardown {
  teardown(fn: () => unknown): void
}

export async function startContentUpstream(t: HasTeardown): Promise<ContentUpstream> {
  const kind = process.env.REELCDN_TEST_UPSTREAM ?? 'fake'
  if (kind !== 'fake') throw new Error(`REELCDN_TEST_UPSTREAM=${kind} is not wired yet; only 'fake' is`)
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  return up
}
