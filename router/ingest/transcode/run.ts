import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { TranscodeError } from './errors.js'
import { why } from './probe.js'

/**
 * Runs one ffmpeg job to its end. ffmpeg reports progress on stdout
 * (`-progress pipe:1`: blocks of key=value lines, about twice a second);
 * `out_time_us` is how far the outputs have got in the source's time, the
 * furthest of its outputs. stderr (`-v error`) is kept, its last 16 KiB,
 * for the error: ffmpeg names what went wrong on its last line.
 *
 * An abort sends SIGTERM: ffmpeg stops and finalises what it wrote, but
 * the files are still `.part` and a re-run will redo them. A non-zero exit
 * (killed, disk full, an encoder refusing) is a TranscodeError.
 */
export interface RunOptions {
  /** called with seconds of the source done, and the encoding speed (× real time) when ffmpeg knows it */
  onProgress?: (seconds: number, speed: number | undefined) => void
  signal?: AbortSignal
}

const KEEP_STDERR = 16 * 1024

export function runFfmpeg(bin: string, args: string[], o: RunOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) return reject(new TranscodeError('the transcode was cancelled'))
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      if (stderr.length > 2 * KEEP_STDERR) stderr = stderr.slice(-KEEP_STDERR)
    })
    let speed: number | undefined
    const lines = createInterface({ input: child.stdout })
    lines.on('line', line => {
      const eq = line.indexOf('=')
      if (eq < 0) return
      const k = line.slice(0, eq)
      const v = line.slice(eq + 1).trim()
      if (k === 'speed') {
        const x = parseFloat(v)
        speed = Number.isFinite(x) ? x : undefined
      } else if (k === 'out_time_us') {
        const us = Number(v)
        // before the first frame ffmpeg prints N/A or a negative time
        if (Number.isFinite(us) && us >= 0) o.onProgress?.(us / 1e6, speed)
      }
    })
    const abort = () => child.kill('SIGTERM')
    o.signal?.addEventListener('abort', abort, { once: true })
    child.on('error', err => {
      o.signal?.removeEventListener('abort', abort)
      reject(new TranscodeError(`cannot run ${bin}: ${err.message}`, { cause: err }))
    })
    child.on('close', (code, sig) => {
      o.signal?.removeEventListener('abort', abort)
      if (code === 0) return resolve()
      if (o.signal?.aborted) return reject(new TranscodeError('the transcode was cancelled'))
      reject(new TranscodeError(`ffmpeg ${sig ? `was killed (${sig})` : `exited with code ${code}`}: ${why(stderr)}`))
    })
  })
}
