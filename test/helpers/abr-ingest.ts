import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { ensureFfmpeg } from './ffmpeg.js'
import { testIngestOverrides } from './abr-sources.js'
import { fakeRouter } from './fake-abr-router.js'
import { ingestAdaptive } from '../../router/ingest/ingest-adaptive.js'
import type { TestT } from '../system/harness.js'

/**
 * What the tests of `reelcdn ingest --renditions` share: a fake router
 * (fake-abr-router.ts), the test ladder's settings, a sink for progress
 * (not a terminal), and ffmpeg behind a wrapper that logs each transcode
 * job (the renditions it writes) and, on request, fails the job writing a
 * rendition (a file `fail-<rid>` in the test dir) or sends SIGTERM to the
 * ingest running it, once (`interrupt-<rid>`).
 */
export async function ingestSetup(t: TestT, extra: Record<string, unknown> = {}) {
  const bin = await ensureFfmpeg()
  const dir = t.testdir()
  const tools = join(dir, 'bin')
  await mkdir(tools)
  // a job writes <rid>.mp4.part files: fail-<rid> makes its job fail, interrupt-<rid> sends SIGTERM to the ingest running it (once)
  await writeFile(join(tools, 'ffmpeg'), `#!/bin/sh
case "$*" in *.part*) echo "$*" >> ${dir}/jobs;; esac
for f in ${dir}/fail-* ${dir}/interrupt-*; do
  [ -e "$f" ] || continue
  rid=\${f##*-}
  case "$*" in *"/$rid.mp4.part"*) ;; *) continue;; esac
  case "$f" in */fail-*) echo "disk full (simulated)" >&2; exit 1;; esac
  rm "$f"; kill -TERM $PPID
done
exec ${bin} "$@"
`)
  await chmod(join(tools, 'ffmpeg'), 0o755)
  await symlink('/usr/bin/ffprobe', join(tools, 'ffprobe'))
  const router = await fakeRouter(t)
  const overrides = testIngestOverrides(join(dir, 'work'), { 'ingest.ffmpeg': join(tools, 'ffmpeg'), ...extra })
  const log: string[] = []
  const out = Object.assign(new Writable({ write(c, _e, cb) { log.push(String(c)); cb() } }), { isTTY: false }) as unknown as NodeJS.WriteStream
  const jobs = async () => (await readFile(join(dir, 'jobs'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean)
    .map(l => [...l.matchAll(/\/(\w+)\.mp4\.part/g)].map(m => m[1]).join('+'))
  const ingest = (file: string, id: string) => ingestAdaptive(file, { id, renditions: 't', category: ['test'], router: router.url, overrides, out },
    { REELCDN_ROUTER_TOKEN: router.token })
  return { bin, dir, router, overrides, log, out, jobs, ingest }
}

