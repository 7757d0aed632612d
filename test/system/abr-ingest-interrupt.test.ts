import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeSource } from '../helpers/abr-sources.js'
import { ingestSetup as setup } from '../helpers/abr-ingest.js'
import { CLI } from '../helpers/spawn.js'

/**
 * `reelcdn ingest FILE --renditions LADDER` as a process, stopped by SIGTERM
 * mid-transcode: it stops its ffmpeg (not orphaned, still writing what the
 * next run needs), uploads and publishes nothing, and says what it kept; run
 * again, it resumes without redoing the finished rungs. Against a fake
 * router (the router's side is on another branch).
 */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }))
  })
}

t.test('reelcdn ingest interrupted mid-transcode stops ffmpeg; run again, it resumes without redoing the finished rungs', async t => {
  const s = await setup(t, { 'ingest.strategy': 'sequential' })
  const file = await makeSource(s.bin, s.dir, 'in.mp4', { seconds: 3 })
  const config = join(s.dir, 'config.json')
  const ingest: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(s.overrides)) ingest[k.replace('ingest.', '')] = v
  await writeFile(config, JSON.stringify({ ingest }))
  await writeFile(join(s.dir, 'interrupt-v90'), '')
  const first = await cli(['ingest', file, '--id', 'abr', '--renditions', 't', '--config', config, '--router', s.router.url], { REELCDN_ROUTER_TOKEN: s.router.token })
  t.equal(first.code, 1, 'exit code 1')
  t.match(first.stderr, /interrupted: stopping ffmpeg/)
  t.match(first.stderr, /reelcdn: transcode failed: the transcode was cancelled; the work directory .* keeps the finished renditions v180, v144: run the same command again to resume/)
  t.same(s.router.requests.filter(x => x.startsWith('PUT')), [], 'nothing uploaded or published')

  // the same settings in-process (a second CLI start costs seconds on a busy machine): the same work directory
  const second = await s.ingest(file, 'abr')
  t.match(second, { status: 'created', contentId: 'abr', renditions: ['v180', 'v144', 'v90', 'a128'] })
  t.match(s.log.join(''), /not transcoded again: v180, v144/)
  t.same(await s.jobs(), ['v180', 'v144', 'v90', 'v90', 'a128'], 'v180 and v144 made once; v90, interrupted, made again')
  t.equal(s.router.titles.get('abr')!.renditions.length, 4)
})
