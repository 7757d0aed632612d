import { Cursor, MediaError, child, children, need, type Box } from './boxes.js'

/**
 * What a CMAF track's `moov` says: its kind, timescale, codec (as an RFC 6381
 * string), picture or sound format, and the fragment defaults of its `trex`.
 * One track per file: a rendition is one track (DASH-IF and CMAF; dash.js
 * refuses multiplexed representations), so a file with more is refused.
 */
export interface Track {
  type: 'video' | 'audio'
  trackId: number
  timescale: number
  codecs: string
  width?: number
  height?: number
  sampleRate?: number
  channels?: number
  /** trex defaults, for fragments whose tfhd and trun leave them out */
  defaults: { duration: number; size: number; flags: number }
}

const VIDEO_ENTRIES = new Set(['avc1', 'avc3'])
const AUDIO_ENTRIES = new Set(['mp4a'])

export function parseMoov(buf: Buffer, moov: Box): Track {
  const b = moov.body - moov.start
  const e = moov.end - moov.start
  const traks = children(buf, b, e).filter(x => x.type === 'trak')
  if (traks.length !== 1) throw new MediaError(`a rendition file holds one track; this one holds ${traks.length}`)
  const trak = traks[0]!
  const tkhd = need(buf, trak.body, trak.end, 'tkhd', 'trak')
  const th = new Cursor(buf, tkhd.body, tkhd.end, 'tkhd')
  const tv = th.full().version
  th.skip(tv === 1 ? 16 : 8)
  const trackId = th.u32()
  th.skip(4 + (tv === 1 ? 8 : 4) + 8 + 2 + 2 + 2 + 2 + 36)
  const tkWidth = th.u32() / 65536
  const tkHeight = th.u32() / 65536
  const mdia = need(buf, trak.body, trak.end, 'mdia', 'trak')
  const mdhd = need(buf, mdia.body, mdia.end, 'mdhd', 'mdia')
  const mh = new Cursor(buf, mdhd.body, mdhd.end, 'mdhd')
  mh.skip(mh.full().version === 1 ? 16 : 8)
  const timescale = mh.u32()
  if (timescale === 0) throw new MediaError('mdhd: timescale 0')
  const hdlr = need(buf, mdia.body, mdia.end, 'hdlr', 'mdia')
  const handler = buf.toString('latin1', hdlr.body + 8, hdlr.body + 12)
  const minf = need(buf, mdia.body, mdia.end, 'minf', 'mdia')
  const stbl = need(buf, minf.body, minf.end, 'stbl', 'minf')
  const stsd = need(buf, stbl.body, stbl.end, 'stsd', 'stbl')
  const entries = children(buf, stsd.body + 8, stsd.end)
  if (entries.length !== 1) throw new MediaError(`stsd: one sample entry expected, found ${entries.length}`)
  const entry = entries[0]!
  const defaults = trexDefaults(buf, b, e, trackId)
  if (handler === 'vide') {
    if (!VIDEO_ENTRIES.has(entry.type)) throw new MediaError(`video codec '${entry.type}' is not supported: H.264 (avc1, avc3) only`)
    const v = new Cursor(buf, entry.body, entry.end, entry.type)
    v.skip(8 + 16)
    const w = v.u16()
    const h = v.u16()
    const avcC = need(buf, entry.body + 78, entry.end, 'avcC', entry.type)
    const c = new Cursor(buf, avcC.body, avcC.end, 'avcC')
    c.u8()
    const hex = (n: number) => n.toString(16).padStart(2, '0')
    const codecs = `${entry.type}.${hex(c.u8())}${hex(c.u8())}${hex(c.u8())}`
    return { type: 'video', trackId, timescale, codecs, width: Math.round(tkWidth) || w, height: Math.round(tkHeight) || h, defaults }
  }
  if (handler === 'soun') {
    if (!AUDIO_ENTRIES.has(entry.type)) throw new MediaError(`audio codec '${entry.type}' is not supported: AAC (mp4a) only`)
    const a = new Cursor(buf, entry.body, entry.end, entry.type)
    a.skip(8 + 8)
    const channels = a.u16()
    a.skip(6)
    const rate = a.u32() >>> 16
    const esds = need(buf, entry.body + 28, entry.end, 'esds', entry.type)
    return { type: 'audio', trackId, timescale, codecs: mp4aCodecs(buf, esds), sampleRate: rate || timescale, channels, defaults }
  }
  throw new MediaError(`track handler '${handler}' is neither video nor audio`)
}

function trexDefaults(buf: Buffer, from: number, to: number, trackId: number): Track['defaults'] {
  const mvex = child(buf, from, to, 'mvex')
  if (!mvex) throw new MediaError('no mvex box in moov: not a fragmented MP4 (transcode with -movflags +frag_keyframe+empty_moov)')
  for (const trex of children(buf, mvex.body, mvex.end).filter(x => x.type === 'trex')) {
    const c = new Cursor(buf, trex.body, trex.end, 'trex')
    c.full()
    if (c.u32() !== trackId) continue
    c.u32()
    return { duration: c.u32(), size: c.u32(), flags: c.u32() }
  }
  throw new MediaError(`no trex box for track ${trackId}`)
}

/** `mp4a.<objectTypeIndication in hex>.<audioObjectType>` from an esds (ISO 14496-1 descriptors, 14496-3 AudioSpecificConfig). */
function mp4aCodecs(buf: Buffer, esds: Box): string {
  const c = new Cursor(buf, esds.body, esds.end, 'esds')
  c.full()
  const descriptor = (tag: number): number => {
    const t = c.u8()
    if (t !== tag) throw new MediaError(`esds: descriptor tag ${t} where ${tag} was expected`)
    let len = 0
    for (let i = 0; i < 4; i++) {
      const b = c.u8()
      len = (len << 7) | (b & 0x7f)
      if (!(b & 0x80)) break
    }
    return len
  }
  descriptor(0x03)
  c.skip(2)
  const flags = c.u8()
  if (flags & 0x80) c.skip(2)
  if (flags & 0x40) c.skip(c.u8())
  if (flags & 0x20) c.skip(2)
  descriptor(0x04)
  const oti = c.u8()
  c.skip(12)
  if (oti !== 0x40) return `mp4a.${oti.toString(16)}`
  descriptor(0x05)
  let aot = c.u8() >>> 3
  if (aot === 31) aot = 32 + ((c.at--, c.u16() >>> 5) & 0x3f)
  return `mp4a.40.${aot}`
}
