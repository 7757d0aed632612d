import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { SourceError } from './errors.js'

/**
 * What a transcode needs to know about its source, read with ffprobe: the
 * picture as it is displayed (sample aspect ratio and rotation applied), the
 * frame rate, the sound if any, the duration — and whether the file is what
 * it claims, before any CPU is spent on it.
 *
 * Two reads: `-show_format -show_streams` (the header), then a scan of the
 * video stream's packets (demux only, no decoding: about 0.2 s for a minute
 * of 480p, I/O-bound for a film) that finds where the pictures really end.
 * A faststart MP4 cut short still has its whole header, so the header alone
 * would say 60 s of a file holding 19; the scan sees the demuxer's "partial
 * file" and the last packet's time. Every refusal is a SourceError naming
 * the file and what is wrong with it.
 */
export interface Rational { num: number; den: number }

export interface SourceInfo {
  file: string
  /** seconds, from the container (or the video stream); undefined when neither says */
  duration: number | undefined
  video: {
    index: number
    codec: string
    /** the picture as displayed: after the sample aspect ratio and a ±90° rotation */
    displayWidth: number
    displayHeight: number
    /** coded size, as decoded */
    width: number
    height: number
    rotation: number
    frameRate: Rational
    /** where the last video packet ends, in seconds from the first */
    end: number
    packets: number
  }
  audio?: { index: number; codec: string; channels: number; sampleRate: number }
}

interface Stream {
  index: number
  codec_type?: string
  codec_name?: string
  width?: number
  height?: number
  sample_aspect_ratio?: string
  avg_frame_rate?: string
  r_frame_rate?: string
  channels?: number
  sample_rate?: string
  duration?: string
  disposition?: { default?: number; attached_pic?: number }
  tags?: { rotate?: string }
  side_data_list?: { side_data_type?: string; rotation?: number }[]
}

interface Probe { streams?: Stream[]; format?: { format_name?: string; duration?: string } }

/** Still-picture demuxers: a png or jpeg is a video stream of one frame to ffprobe. */
const STILL_FORMATS = /(^|,)(image2|[a-z0-9]+_pipe|gif|apng|webp)(,|$)/

export async function probeSource(ffprobe: string, file: string): Promise<SourceInfo> {
  const head = await ffprobeRun(ffprobe, ['-v', 'error', '-of', 'json', '-show_format', '-show_streams', file])
  if (head.code !== 0) throw new SourceError(`${file} is not a video ffmpeg can read: ${why(head.stderr)}`)
  let p: Probe
  try {
    p = JSON.parse(head.stdout) as Probe
  } catch {
    throw new SourceError(`${file}: ffprobe's answer is not JSON`)
  }
  const streams = p.streams ?? []
  const formatName = p.format?.format_name ?? '?'
  if (/(^|,)tty(,|$)/.test(formatName)) throw new SourceError(`${file} is text (tty), not a video`)
  const pictures = streams.filter(s => s.codec_type === 'video' && s.disposition?.attached_pic !== 1 && s.codec_name !== 'ansi')
  if (pictures.length === 0) {
    const kinds = streams.map(s => s.codec_type ?? '?')
    throw new SourceError(`${file} has no video stream (${formatName}${kinds.length ? `: ${kinds.join(', ')}` : ''})`)
  }
  const v = pictures.find(s => s.disposition?.default === 1) ?? pictures[0]!
  if (!v.width || !v.height) throw new SourceError(`${file}: the video stream has no picture size`)
  if (STILL_FORMATS.test(formatName)) throw new SourceError(`${file} is a still image (${formatName}), not a video`)
  const frameRate = rate(v.avg_frame_rate) ?? rate(v.r_frame_rate)
  if (!frameRate) throw new SourceError(`${file}: the video stream has no frame rate`)
  const rotation = rotationOf(v)
  const sar = ratio(v.sample_aspect_ratio) ?? 1
  let dw = v.width * sar
  let dh = v.height
  if (Math.abs(rotation) % 180 === 90) [dw, dh] = [dh, dw]
  const a = streams.filter(s => s.codec_type === 'audio')
  const audio = a.find(s => s.disposition?.default === 1) ?? a[0]
  const duration = num(p.format?.duration) ?? num(v.duration)

  const scan = await scanPackets(ffprobe, file, v.index)
  if (scan.packets === 0) throw new SourceError(`${file}: the video stream holds no frames`)
  if (scan.packets === 1) throw new SourceError(`${file} is a still image (one frame), not a video`)
  const declared = num(v.duration) ?? duration
  const short = declared !== undefined && scan.end < declared - Math.max(1, declared * 0.02)
  if (scan.partial || (short && num(v.duration) !== undefined)) {
    throw new SourceError(`${file} is truncated: ${declared !== undefined ? `its header says ${declared.toFixed(1)} s, but ` : ''}` +
      `its video ends at ${scan.end.toFixed(1)} s${scan.partial ? ` (${scan.partial})` : ''}`)
  }
  return {
    file, duration,
    video: {
      index: v.index, codec: v.codec_name ?? '?', width: v.width, height: v.height,
      displayWidth: Math.round(dw), displayHeight: Math.round(dh), rotation, frameRate, end: scan.end, packets: scan.packets,
    },
    ...(audio ? { audio: { index: audio.index, codec: audio.codec_name ?? '?', channels: audio.channels ?? 0, sampleRate: Number(audio.sample_rate ?? 0) } } : {}),
  }
}

/** Where the video's packets end, how many there are, and the demuxer's complaint if the file is cut short. */
async function scanPackets(ffprobe: string, file: string, index: number): Promise<{ end: number; packets: number; partial: string | undefined }> {
  const child = spawn(ffprobe, ['-v', 'error', '-select_streams', String(index), '-show_entries', 'packet=pts_time,dts_time,duration_time',
    '-of', 'csv=p=0', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 64 * 1024) stderr += d })
  let first: number | undefined
  let end = 0
  let packets = 0
  const closed = new Promise<number | null>((resolve, reject) => { child.on('error', reject); child.on('close', resolve) })
  for await (const line of createInterface({ input: child.stdout })) {
    const [pts, dts, dur] = line.split(',').map(x => Number(x))
    const t = Number.isFinite(pts) ? pts! : dts!
    if (!Number.isFinite(t)) continue
    packets++
    first = first === undefined ? t : Math.min(first, t)
    end = Math.max(end, t + (Number.isFinite(dur) ? dur! : 0))
  }
  await closed
  const partial = /partial file|truncat|end of file/i.exec(stderr) ? why(stderr) : undefined
  return { end: end - (first ?? 0), packets, partial }
}

function ffprobeRun(bin: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 64 * 1024) stderr += d })
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
  })
}

/** ffmpeg's last meaningful line, without its `[mov,mp4 @ 0x…]` prefix and the repeated file name. */
export function why(stderr: string): string {
  const lines = stderr.split('\n').map(l => l.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/, '').trim()).filter(Boolean)
  const moov = lines.find(l => /moov atom not found/.test(l))
  if (moov) return 'no moov box (moov atom not found): the file is truncated, not an MP4, or an MP4 whose writer never finished'
  const last = (lines.at(-1) ?? 'no reason given').replace(/^.*?: (?=[A-Z])/, '')
  return last === 'End of file' ? 'it ends in the middle of its header (End of file): the file is truncated' : last
}

function rotationOf(s: Stream): number {
  const dm = s.side_data_list?.find(d => d.side_data_type === 'Display Matrix' && typeof d.rotation === 'number')
  const r = dm?.rotation ?? num(s.tags?.rotate) ?? 0
  return ((Math.round(r) % 360) + 360) % 360
}

function rate(s: string | undefined): Rational | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(s ?? '')
  if (!m || Number(m[1]) === 0 || Number(m[2]) === 0) return undefined
  return { num: Number(m[1]), den: Number(m[2]) }
}

function ratio(s: string | undefined): number | undefined {
  const m = /^(\d+):(\d+)$/.exec(s ?? '')
  if (!m || Number(m[1]) === 0 || Number(m[2]) === 0) return undefined
  return Number(m[1]) / Number(m[2])
}

function num(s: string | undefined): number | undefined {
  const n = Number(s)
  return s !== undefined && s !== '' && Number.isFinite(n) ? n : undefined
}
