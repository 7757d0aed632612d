import { durationSeconds, type Rendition } from '../../../lib/media/rendition.js'
import { jobs, type Job, type Strategy } from './args.js'
import { Bars } from './bars.js'
import { SourceError, TranscodeError } from './errors.js'
import { planLadder, type IngestSettings, type LadderPlan } from './ladder.js'
import type { SourceInfo } from './probe.js'
import { indexLadder, type LocalRendition } from './renditions.js'
import { runFfmpeg } from './run.js'
import type { Tools } from './tools.js'
import { WorkDir } from './work-dir.js'

/**
 * Source → ladder of rendition files on this machine, resumable.
 *
 * Theory of operation. The plan (ladder.ts) and the source's SHA-256 name a
 * work directory (work-dir.ts); renditions already finished there are not
 * made again. The rest are grouped into ffmpeg jobs by the strategy
 * (args.ts; `ingest.strategy`, measured in docs/benchmarks.md) and run — one
 * job, several at once, or one after another — each with a progress bar. A
 * job's files become `<rid>.mp4` only once its ffmpeg exited cleanly. Then
 * every file is indexed and the set checked as a ladder: keyframe alignment
 * is checked on the result, not assumed from the command line. Last, the
 * video must last as long as the source's pictures: a source that decodes
 * short is damaged.
 *
 * Failure. A SourceError (the source's fault: it will fail again) removes
 * the work directory. Anything else (ffmpeg killed, disk full, a bad file
 * out of ffmpeg) keeps it, with what finished, and the error says where: the
 * same command resumes. Nothing here talks to a router, so a failed
 * transcode publishes nothing.
 */
export interface TranscodeOptions {
  source: SourceInfo
  /** the source file's SHA-256: part of the work directory's key */
  sha256: string
  ladder: string
  settings: IngestSettings
  tools: Tools
  strategy?: Strategy
  /** where progress bars go (default stderr) */
  out?: NodeJS.WriteStream
  signal?: AbortSignal
}

export interface TranscodeResult {
  plan: LadderPlan
  workDir: WorkDir
  renditions: LocalRendition[]
  /** renditions found finished in the work directory */
  resumed: string[]
  /** each job that ran: its renditions and its wall time */
  jobs: { outputs: string[]; seconds: number }[]
  seconds: number
}

/** Format of a work directory's contents; part of its key, so a change here never resumes from older files. */
const LAYOUT = 1

export interface Prepared {
  plan: LadderPlan
  workDir: WorkDir
  /** the renditions to make: video rungs, highest first, then the audio */
  ids: string[]
}

/** Plans the ladder and opens (and locks) its work directory: a caller may find the title published from it before any transcoding. */
export async function prepareTranscode(o: TranscodeOptions): Promise<Prepared> {
  const plan = planLadder(o.source, o.ladder, o.settings)
  const workDir = await WorkDir.open(o.settings.workDir, { layout: LAYOUT, source: o.sha256, plan: { ...plan, ladder: undefined }, ffmpeg: o.tools.version },
    { source: o.source.file, sha256: o.sha256, ffmpeg: o.tools.version, plan })
  return { plan, workDir, ids: [...plan.rungs.map(r => r.id), ...(plan.audio ? [plan.audio.id] : [])] }
}

export async function transcode(o: TranscodeOptions, prepared?: Prepared): Promise<TranscodeResult> {
  const started = performance.now()
  const { plan, workDir: wd, ids } = prepared ?? await prepareTranscode(o)
  const strategy = o.strategy ?? o.settings.strategy
  try {
    const resumed: string[] = []
    for (const id of ids) if (await wd.finished(id)) resumed.push(id)
    const todo = new Set(ids.filter(id => !resumed.includes(id)))
    const list = jobs(plan, o.source.file, wd.dir, strategy, todo)
    const bars = new Bars(o.out)
    const ran: TranscodeResult['jobs'] = []
    const run = async (j: Job) => {
      const t0 = performance.now()
      const bar = bars.add(`transcode ${j.outputs.join('+').padEnd(12)}`, o.source.duration ?? o.source.video.end)
      try {
        await runFfmpeg(o.tools.ffmpeg, j.args, { signal: o.signal, onProgress: (s, speed) => bar.update(s, speed ? `${speed.toFixed(2)}x` : '') })
      } catch (err) {
        bar.finish('failed')
        throw err
      }
      for (const id of j.outputs) await wd.finish(id)
      const seconds = (performance.now() - t0) / 1000
      bar.finish(`done in ${seconds.toFixed(1)} s`, true)
      ran.push({ outputs: j.outputs, seconds })
    }
    if (strategy === 'parallel') {
      const settled = await Promise.allSettled(list.map(run))
      const failed = settled.find(s => s.status === 'rejected')
      if (failed) throw (failed as PromiseRejectedResult).reason
    } else {
      for (const j of list) await run(j)
    }
    // files that do not make a ladder would fail the same way on a resume: they are not kept
    const renditions = await indexLadder(ids.map(id => ({ id, path: wd.path(id) })),
      (m, cause) => new Unusable(`ffmpeg made renditions that cannot be published: ${m}`, cause ? { cause } : undefined))
    checkDuration(o.source, renditions)
    return { plan, workDir: wd, renditions, resumed, jobs: ran, seconds: (performance.now() - started) / 1000 }
  } catch (err) {
    if (err instanceof SourceError || err instanceof Unusable) {
      await wd.clear()
      throw err
    }
    await wd.unlock()
    const kept = []
    for (const id of ids) if (await wd.finished(id)) kept.push(id)
    const where = kept.length > 0
      ? `the work directory ${wd.dir} keeps the finished rendition${kept.length > 1 ? 's' : ''} ${kept.join(', ')}: run the same command again to resume`
      : `nothing was finished; the work directory ${wd.dir} is kept for the next run`
    const e = err as Error
    throw new TranscodeError(`transcode failed: ${e.message}; ${where}`, { cause: err })
  }
}

/** Renditions out of ffmpeg that fail the index or the ladder check: removed, not resumed from. */
class Unusable extends TranscodeError {
  override name = 'TranscodeError'
}

/** Pictures missing at the end mean the source decodes short of what its packets said: damaged. */
function checkDuration(src: SourceInfo, rs: LocalRendition[]): void {
  const video = rs.find(r => r.media.type === 'video')
  if (!video) return
  const got = durationSeconds(video.media as Pick<Rendition, 'timescale' | 'segments'>)
  const want = src.video.end
  if (got < want - Math.max(1, want * 0.02)) {
    throw new SourceError(`${src.file} is damaged: its video packets span ${want.toFixed(1)} s but only ${got.toFixed(1)} s decode`)
  }
}
