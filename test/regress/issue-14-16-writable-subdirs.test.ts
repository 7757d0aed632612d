import t from 'tap'
import { chmodSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { own, refused, runUntilReady } from '../helpers/start-refused.js'

/**
 * Issue 14, item 16, review: the edge checked at start that its data dir takes
 * writes, but not chunks/ and tmp/ under it, nor the title directories already
 * in chunks/; the shard checked chunks/, tmp/ and quarantine/, but not its
 * title directories. A read-only one was found by the first write into it,
 * after "ready". Both now probe them at start (the title directories with
 * access(W_OK), not a write each: there can be thousands) and refuse to start
 * naming the path.
 */
const edgeArgs = (d: string) => ['edge', '--port', '0', '--data-dir', d, '--upstream', 'http://127.0.0.1:9', '--prefill-window', 'never']
const originArgs = (d: string) => ['origin', '--port', '0', '--data-dir', d, '--reserve', '0']

function layout(t: Test, dirs: string[]): string {
  const dir = join(t.testdir(), 'data')
  for (const d of ['', ...dirs]) mkdirSync(join(dir, d), { recursive: true })
  own(dir)
  return dir
}

/** Makes `path` read-only until the test ends (tap must be able to remove it). */
function readOnly(t: Test, path: string): void {
  chmodSync(path, 0o555)
  t.teardown(() => { if (existsSync(path)) chmodSync(path, 0o755) })
}

for (const sub of ['chunks', 'tmp']) {
  t.test(`edge: a read-only ${sub}/ stops the start`, async t => {
    const dir = layout(t, ['chunks', 'tmp'])
    readOnly(t, join(dir, sub))
    refused(t, await runUntilReady(edgeArgs(dir), 'edge ready'), join(dir, sub))
  })
}

t.test('edge: a read-only title directory among many stops the start', async t => {
  const titles = Array.from({ length: 200 }, (_, i) => `chunks/title-${i}`)
  const dir = layout(t, ['tmp', ...titles])
  readOnly(t, join(dir, 'chunks/title-150'))
  refused(t, await runUntilReady(edgeArgs(dir), 'edge ready'), join(dir, 'chunks/title-150'))
})

t.test('origin: a read-only title directory stops the start', async t => {
  const dir = layout(t, ['chunks/movie-1.0123456789abcdef', 'chunks/movie-2.0123456789abcdef', 'tmp', 'quarantine'])
  readOnly(t, join(dir, 'chunks/movie-2.0123456789abcdef'))
  refused(t, await runUntilReady(originArgs(dir), 'origin shard ready'), join(dir, 'chunks/movie-2.0123456789abcdef'))
})

t.test('an edge whose directories all take writes starts', async t => {
  t.ok((await runUntilReady(edgeArgs(layout(t, ['chunks/title-0', 'tmp'])), 'edge ready')).ready, 'the edge')
})

t.test('a shard whose directories all take writes starts', async t => {
  t.ok((await runUntilReady(originArgs(layout(t, ['chunks/movie-1.0123456789abcdef', 'tmp', 'quarantine'])), 'origin shard ready')).ready, 'the shard')
})
