import { open, type FileHandle } from 'node:fs/promises'
import { Cursor, MediaError, boxAt, children, need, type Box } from './boxes.js'
import { parseMoov, type Track } from './track.js'

/**
 * Indexes a fragmented MP4 (CMAF) file: where its initialization segment
 * ends, where each media segment starts and how long it lasts, and what the
 * track is — everything a playlist needs to address the file as byte ranges,
 * read from box headers, the `moov` and each `moof` (never the media data).
 *
 * A segment is one or more fragments (`styp`? `moof` `mdat`, and whatever
 * small boxes sit between them). For video a segment starts at each fragment
 * whose first sample is a sync sample (a closed GOP's IDR frame), so a file
 * fragmented per GOP or per frame indexes the same; for audio every fragment
 * starts one. The initialization segment is everything before the first
 * segment (ftyp, moov, a sidx if any); bytes after the last `mdat` (an
 * `mfra`) belong to no segment. Durations are summed from `trun`, `tfhd` or
 * `trex` sample durations, so no sample table is needed.
 *
 * The file is read with positioned reads of box headers; only `moov` and
 * each `moof` are read whole, and both are bounded.
 */
export interface Fmp4Index {
  size: number
  track: Track
  init: number
  segments: { start: number; sizes: number[]; durations: number[] }
  /** frames per second, for video: the timescale over the most common sample duration */
  frameRate?: number
  /** peak bits per second over any segment, and over the whole file */
  bandwidth: number
  averageBandwidth: number
}

const MAX_MOOV = 64 * 1024 ** 2 // 64 MiB: a fragmented moov has no sample tables, a few KiB in practice
const MAX_MOOF = 16 * 1024 ** 2 // 16 MiB: a fragment's run of sample sizes and flags

interface Source {
  size: number
  read(at: number, n: number): Promise<Buffer>
}

export async function indexFmp4File(path: string): Promise<Fmp4Index> {
  let fh: FileHandle
  try {
    fh = await open(path, 'r')
  } catch (err) {
    throw new MediaError(`${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new MediaError(`${path} is not a file`)
    return await indexSource({
      size: st.size,
      read: async (at, n) => {
        const buf = Buffer.allocUnsafe(n)
        const { bytesRead } = await fh.read(buf, 0, n, at)
        if (bytesRead !== n) throw new MediaError(`${path}: the file ends at byte ${at + bytesRead}, ${n - bytesRead} bytes short of a box`)
        return buf
      },
    })
  } catch (err) {
    if (err instanceof MediaError && !err.message.startsWith(path)) err.message = `${path}: ${err.message}`
    throw err
  } finally {
    await fh.close()
  }
}

export function indexFmp4Buffer(buf: Buffer): Promise<Fmp4Index> {
  return indexSource({
    size: buf.length,
    read: async (at, n) => {
      if (at + n > buf.length) throw new MediaError(`the file ends at byte ${buf.length}, ${at + n - buf.length} bytes short of a box`)
      return buf.subarray(at, at + n)
    },
  })
}

interface Fragment {
  start: number
  end: number
  duration: number
  sync: boolean
  decodeTime: number | undefined
}

async function indexSource(src: Source): Promise<Fmp4Index> {
  let track: Track | undefined
  let sawFtyp = false
  const frags: Fragment[] = []
  let pendingStyp: number | undefined
  let current: Fragment | undefined
  const durations = new Map<number, number>()
  for (let at = 0; at < src.size;) {
    const head = await src.read(at, Math.min(16, src.size - at))
    // only the header is read here (up to 16 bytes): the container is the rest of the file, where a box of size 0 ends
    const box = boxAt(head, 0, src.size - at, at)
    if (!box) throw new MediaError(`${src.size - at} stray bytes at byte ${at}: the file is truncated or not MP4`)
    if (at === 0 && box.type !== 'ftyp' && box.type !== 'styp') throw new MediaError('not an MP4 file: it does not start with an ftyp box')
    if (box.end > src.size) throw new MediaError(`box '${box.type}' at byte ${at} ends at ${box.end}, past the file's end (${src.size}): the file is truncated`)
    if (box.type === 'ftyp') sawFtyp = true
    else if (box.type === 'moov') {
      if (track) throw new MediaError('two moov boxes')
      track = parseMoov(await readBox(src, box, MAX_MOOV), rebase(box))
    } else if (box.type === 'styp') {
      pendingStyp = box.start
    } else if (box.type === 'moof') {
      if (!track) throw new MediaError(`moof at byte ${at} before any moov`)
      const f = parseMoof(await readBox(src, box, MAX_MOOF), rebase(box), track, durations, src.size)
      current = { start: pendingStyp ?? box.start, end: box.end, ...f }
      pendingStyp = undefined
    } else if (box.type === 'mdat') {
      if (current) {
        current.end = box.end
        frags.push(current)
        current = undefined
      }
    }
    at = box.end
  }
  if (!sawFtyp) throw new MediaError('not an MP4 file: no ftyp box')
  if (!track) throw new MediaError('no moov box')
  if (current) throw new MediaError(`the last fragment (moof at byte ${current.start}) has no mdat: the file is truncated`)
  if (frags.length === 0) throw new MediaError('no fragments: not a fragmented MP4 (transcode with -movflags +frag_keyframe+empty_moov)')
  if (track.type === 'video' && !frags[0]!.sync) throw new MediaError('the first video fragment does not start with a sync sample')
  const starts = frags.filter((f, i) => i === 0 || track!.type === 'audio' || f.sync)
  const sizes: number[] = []
  const segDurations: number[] = []
  let fi = 0
  for (let s = 0; s < starts.length; s++) {
    const from = starts[s]!.start
    let to = from
    let dur = 0
    while (fi < frags.length && (s + 1 === starts.length || frags[fi]!.start < starts[s + 1]!.start)) {
      to = frags[fi]!.end
      dur += frags[fi]!.duration
      fi++
    }
    // boxes between a segment's last mdat and the next segment (free, emsg) belong to the segment before
    if (s + 1 < starts.length) to = starts[s + 1]!.start
    if (dur === 0) throw new MediaError(`segment ${s} (byte ${from}) has no duration: its samples carry none`)
    sizes.push(to - from)
    segDurations.push(dur)
  }
  const init = starts[0]!.start
  const index: Fmp4Index = {
    size: src.size, track, init,
    segments: { start: frags[0]!.decodeTime ?? 0, sizes, durations: segDurations },
    ...rates(sizes, segDurations, track.timescale),
  }
  if (track.type === 'video') {
    let common = 0
    let best = 0
    for (const [d, n] of durations) if (n > best) { best = n; common = d }
    if (common > 0) index.frameRate = Math.round((track.timescale / common) * 1000) / 1000
  }
  return index
}

function rates(sizes: number[], durations: number[], timescale: number): { bandwidth: number; averageBandwidth: number } {
  let peak = 0
  let bytes = 0
  let ticks = 0
  for (let i = 0; i < sizes.length; i++) {
    bytes += sizes[i]!
    ticks += durations[i]!
    peak = Math.max(peak, (sizes[i]! * 8 * timescale) / durations[i]!)
  }
  return { bandwidth: Math.ceil(peak), averageBandwidth: Math.min(Math.ceil(peak), Math.ceil((bytes * 8 * timescale) / ticks)) }
}

async function readBox(src: Source, box: Box, max: number): Promise<Buffer> {
  if (box.end - box.start > max) throw new MediaError(`box '${box.type}' at byte ${box.start} is ${box.end - box.start} bytes, more than ${max}`)
  return src.read(box.start, box.end - box.start)
}

/** The box's own offsets within a buffer that holds exactly it. */
function rebase(box: Box): Box {
  return { type: box.type, start: 0, body: box.body - box.start, end: box.end - box.start }
}

const NON_SYNC = 0x10000

/** One fragment's duration, whether its first sample is a sync sample, and its decode time; tallies sample durations for the frame rate. */
function parseMoof(buf: Buffer, moof: Box, track: Track, tally: Map<number, number>, fileSize: number): { duration: number; sync: boolean; decodeTime: number | undefined } {
  let duration = 0
  let sync: boolean | undefined
  let decodeTime: number | undefined
  for (const traf of children(buf, moof.body, moof.end).filter(b => b.type === 'traf')) {
    const tfhd = need(buf, traf.body, traf.end, 'tfhd', 'traf')
    const h = new Cursor(buf, tfhd.body, tfhd.end, 'tfhd')
    const hf = h.full().flags
    if (h.u32() !== track.trackId) continue
    if (hf & 0x1) h.skip(8)
    if (hf & 0x2) h.skip(4)
    const defDuration = hf & 0x8 ? h.u32() : track.defaults.duration
    if (hf & 0x10) h.skip(4)
    const defFlags = hf & 0x20 ? h.u32() : track.defaults.flags
    for (const b of children(buf, traf.body, traf.end)) {
      if (b.type === 'tfdt') {
        const c = new Cursor(buf, b.body, b.end, 'tfdt')
        decodeTime ??= c.full().version === 1 ? c.u64() : c.u32()
      } else if (b.type === 'trun') {
        const c = new Cursor(buf, b.body, b.end, 'trun')
        const f = c.full().flags
        const n = c.u32()
        // a sample is at least a byte of the file's mdat: more samples than the file has bytes is a malformed trun
        if (n > fileSize) throw new MediaError(`a trun claims ${n} samples, more than the file's ${fileSize} bytes`)
        if (f & 0x1) c.skip(4)
        const first = f & 0x4 ? c.u32() : undefined
        if ((f & 0xf00) === 0) {
          // no per-sample fields: every sample has the defaults, so n costs nothing to read (a malformed one may claim 2^32)
          if (n === 0) continue
          sync ??= ((first ?? defFlags) & NON_SYNC) === 0
          duration += n * defDuration
          tally.set(defDuration, (tally.get(defDuration) ?? 0) + n)
          continue
        }
        for (let i = 0; i < n; i++) {
          const d = f & 0x100 ? c.u32() : defDuration
          if (f & 0x200) c.skip(4)
          const own = f & 0x400 ? c.u32() : defFlags
          if (f & 0x800) c.skip(4)
          // first-sample-flags, when present, overrides the first sample's own
          if (sync === undefined) sync = ((i === 0 && first !== undefined ? first : own) & NON_SYNC) === 0
          duration += d
          tally.set(d, (tally.get(d) ?? 0) + 1)
        }
      }
    }
  }
  return { duration, sync: sync ?? false, decodeTime }
}
