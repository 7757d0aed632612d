import t from 'tap'
import { execFileSync } from 'node:child_process'
import { constants as fsc, readFileSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { createLogger, quietLogger } from '../../lib/logger.js'
import { ZERO_COPY_AVAILABLE, zeroCopyChunk } from '../../lib/net/zero-copy.js'
import { ChunkFileWriter } from './chunk-file-write.js'

const MiB = 1024 * 1024

/** bytes of `path` in the page cache (util-linux fincore); undefined without the tool */
function resident(path: string): number | undefined {
  try {
    return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path]).toString().trim())
  } catch {
    return undefined
  }
}

function pattern(buf: Buffer): Buffer {
  for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE(i, i)
  return buf
}

async function written(w: ChunkFileWriter, path: string, buf: Buffer): Promise<boolean> {
  const out = await w.open(path, buf)
  await w.write(out, buf)
  return out.direct
}

function lines() {
  const got: { level: number; msg: string }[] = []
  const logger = createLogger('edge', 'info', { write: (l: string) => void got.push(JSON.parse(l) as { level: number; msg: string }) })
  return { logger, got }
}

t.test('a chunk in page-aligned memory of a whole number of pages goes straight to the device, not into the page cache', { skip: !ZERO_COPY_AVAILABLE && 'the splice addon is not built' }, async t => {
  const dir = t.testdir()
  if (!await directOk(dir)) return void t.comment('skipped: the test directory\'s file system refuses O_DIRECT')
  const w = new ChunkFileWriter(true, quietLogger('edge'))
  const buf = pattern(zeroCopyChunk(4 * MiB))
  t.ok(await written(w, join(dir, 'a'), buf), 'opened direct')
  // before anything reads the file back (which caches it)
  const res = resident(join(dir, 'a'))
  if (res !== undefined) t.equal(res, 0, 'none of it was left in the page cache by the write')
  t.ok(readFileSync(join(dir, 'a')).equals(buf), 'the file holds the chunk')
  t.same(w.written, { direct: 4 * MiB, page_cache: 0 })
  t.ok(w.direct)
})

t.test('other chunks go through the page cache: memory the kernel cannot take, a length that is not whole pages, the setting off', async t => {
  const dir = t.testdir()
  const w = new ChunkFileWriter(true, quietLogger('edge'))
  const heap = pattern(Buffer.alloc(2 * MiB))
  t.notOk(await written(w, join(dir, 'heap'), heap), 'a heap Buffer')
  const res = resident(join(dir, 'heap'))
  if (res !== undefined) t.equal(res, 2 * MiB, 'written through the page cache')
  t.ok(readFileSync(join(dir, 'heap')).equals(heap))
  if (ZERO_COPY_AVAILABLE) {
    const last = pattern(zeroCopyChunk(2 * MiB)).subarray(0, 2 * MiB - 100)
    t.notOk(await written(w, join(dir, 'last'), last), 'a file\'s last chunk, not a whole number of pages')
    t.ok(readFileSync(join(dir, 'last')).equals(last))
    const off = pattern(zeroCopyChunk(2 * MiB)).subarray(4096 + 512)
    t.notOk(await written(w, join(dir, 'off'), off.subarray(0, MiB)), 'a view that does not start on a page')
    const whole = pattern(zeroCopyChunk(MiB))
    t.notOk(await written(new ChunkFileWriter(false, quietLogger('edge')), join(dir, 'off-setting'), whole), 'edge.diskDirectWrites off')
    t.ok(readFileSync(join(dir, 'off-setting')).equals(whole))
  }
  t.equal(w.written.direct, 0)
  t.ok(w.direct, 'none of these turns direct writes off')
})

/** an open whose O_DIRECT handles write with `write` (the writer uses write, sync and close) */
function directHandles(write: (fh: FileHandle, buf: Buffer, off: number, len: number) => Promise<{ bytesWritten: number }>, closed: string[] = []) {
  return (async (path: string, flags: number, mode?: number) => {
    // the real handle without O_DIRECT (the fake write decides), so the test runs on any file system
    const fh = await open(path, flags & ~fsc.O_DIRECT, mode)
    const close = () => { closed.push(`${flags & fsc.O_DIRECT ? 'direct' : 'page cache'} ${path}`); return fh.close() }
    if (!(flags & fsc.O_DIRECT)) return { write: fh.write.bind(fh), sync: () => fh.sync(), close } as unknown as FileHandle
    return { write: (buf: Buffer, off: number, len: number) => write(fh, buf, off, len), sync: () => fh.sync(), close } as unknown as FileHandle
  }) as typeof open
}

/** whether `dir`'s file system takes O_DIRECT at all */
async function directOk(dir: string): Promise<boolean> {
  try {
    await (await open(join(dir, 'probe'), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_DIRECT, 0o644)).close()
    return true
  } catch {
    return false
  }
}

const einval = (what: string) => Object.assign(new Error(`EINVAL: invalid argument, ${what}`), { code: 'EINVAL' })

t.test('a file system that refuses O_DIRECT turns it off, said once, and nothing is lost', { skip: !ZERO_COPY_AVAILABLE && 'the splice addon is not built' }, async t => {
  const dir = t.testdir()
  const a = pattern(zeroCopyChunk(MiB))

  // at the open (tmpfs before Linux 6.6, some network file systems), which Linux refuses after it created the file
  const first = lines()
  let directOpens = 0
  const refusesOpen = (async (path: string, flags: number, mode?: number) => {
    if (flags & fsc.O_DIRECT) {
      directOpens++
      await (await open(path, flags & ~fsc.O_DIRECT, mode)).close()
      throw einval(`open '${path}'`)
    }
    return open(path, flags, mode)
  }) as typeof open
  const w = new ChunkFileWriter(true, first.logger, refusesOpen)
  t.notOk(await written(w, join(dir, 'a'), a))
  t.notOk(await written(w, join(dir, 'b'), a))
  t.ok(readFileSync(join(dir, 'a')).equals(a) && readFileSync(join(dir, 'b')).equals(a), 'both chunks written whole')
  t.equal(directOpens, 1, 'asked once, not for every chunk')
  t.notOk(w.direct)
  t.same(first.got.map(l => [l.level, l.msg]), [[30, 'the disk tier\'s file system refuses direct writes (O_DIRECT): chunks are written through the page cache']], 'at info')

  // at the first write, after other bytes reached the file: they do not stay
  const second = lines()
  const closed: string[] = []
  const w2 = new ChunkFileWriter(true, second.logger, directHandles(async fh => {
    const other = zeroCopyChunk(MiB + 8192).fill(0xee)
    t.equal((await fh.write(other, 0, other.length, 0)).bytesWritten, other.length)
    throw einval('write')
  }, closed))
  t.notOk(await written(w2, join(dir, 'c'), a), 'written again through the page cache')
  t.ok(readFileSync(join(dir, 'c')).equals(a), 'the file holds the chunk once, whole, and nothing else')
  t.same(w2.written, { direct: 0, page_cache: MiB })
  t.notOk(w2.direct)
  t.same(second.got.map(l => l.level), [40], 'at warn: the open was taken, the write was not')
  t.same(closed, [`direct ${join(dir, 'c')}`, `page cache ${join(dir, 'c')}`], 'each handle closed once')
})

t.test('a direct write refused part-way (a short write left an unaligned rest) is done again, and direct writes stay on', { skip: !ZERO_COPY_AVAILABLE && 'the splice addon is not built' }, async t => {
  const dir = t.testdir()
  const { logger, got } = lines()
  let calls = 0
  const closed: string[] = []
  const w = new ChunkFileWriter(true, logger, directHandles(async (fh, buf, off, len) => {
    if (calls++ === 0) return fh.write(buf, off, 4096)
    throw einval('write')
  }, closed))
  const a = pattern(zeroCopyChunk(MiB))
  t.notOk(await written(w, join(dir, 'a'), a))
  t.ok(readFileSync(join(dir, 'a')).equals(a))
  t.same(w.written, { direct: 0, page_cache: MiB })
  t.same(closed, [`direct ${join(dir, 'a')}`, `page cache ${join(dir, 'a')}`], 'each handle closed once')
  t.ok(w.direct, 'still on')
  t.same(got, [], 'nothing said')
})

t.test('any other failure is the write\'s', async t => {
  const dir = t.testdir()
  const w = new ChunkFileWriter(true, quietLogger('edge'))
  const buf = ZERO_COPY_AVAILABLE ? zeroCopyChunk(MiB) : Buffer.alloc(MiB)
  await written(w, join(dir, 'a'), buf)
  await t.rejects(w.open(join(dir, 'a'), buf), { code: 'EEXIST' }, 'the temporary file must be new')
  t.ok(w.direct || !ZERO_COPY_AVAILABLE, 'and direct writes stay on')
  if (!ZERO_COPY_AVAILABLE) return
  const closed: string[] = []
  const full = new ChunkFileWriter(true, quietLogger('edge'), directHandles(async () => {
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
  }, closed))
  await t.rejects(written(full, join(dir, 'b'), buf), { code: 'ENOSPC' }, 'a full disk fails the write')
  t.same(closed, [`direct ${join(dir, 'b')}`], 'its file closed')
  t.ok(full.direct, 'direct writes stay on')
  t.same(full.written, { direct: 0, page_cache: 0 })
})
