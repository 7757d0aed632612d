import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../lib/config/config.js'
import { quietLogger } from '../../lib/logger.js'
import { startEdge } from '../../edge/main.js'
import { launch } from '../helpers/browser.js'
import { metric } from '../helpers/edge.js'
import { ensureFfmpeg, ffmpeg } from '../helpers/ffmpeg.js'
import { TestCluster } from './harness.js'

/**
 * A browser <video> pointed at the edge, on the whole real stack: three
 * shards, the router, the edge. Headless Debian Chromium plays the title,
 * seeks forward and back, and keeps playing; the edge must have answered the
 * browser's range requests to get there. The clip spans many chunks (64 KiB
 * here), so playback and seeks cross chunk boundaries and fill misses.
 */
t.test('a browser video element plays and seeks through the edge', async t => {
  const bin = await ensureFfmpeg()
  const c = await TestCluster.start(t, { chunkSize: 64 * 1024 })
  const file = join(c.shardDir(0), '..', 'clip.webm')
  await ffmpeg(bin, ['-f', 'lavfi', '-i', 'testsrc=duration=12:size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=12',
    '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '3M', '-g', '25', '-c:a', 'libvorbis', '-shortest', '-y', file])
  const bytes = readFileSync(file)
  t.equal((await c.ingest('clip', bytes, { meta: { contentType: 'video/webm', title: 'Clip' } })).status, 201)
  const edge = await startEdge(loadConfig({ env: {}, overrides: {
    'edge.port': 0, 'edge.upstream': c.url, 'edge.dataDir': join(c.shardDir(0), '..', 'edge'), 'edge.ramBytes': 4 * 1024 ** 2,
    'edge.diskBytes': 64 * 1024 ** 2, 'cluster.chunkSize': 64 * 1024, 'http.shutdownGraceMs': 500, 'log.level': 'silent' } }),
  { logger: quietLogger('edge'), env: {} })
  t.teardown(() => edge.close())
  t.comment(`clip: ${bytes.length} bytes in ${Math.ceil(bytes.length / 65536)} chunks`)

  const browser = await launch()
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', e => errors.push(e.message))
  await page.setContent(`<video id="v" muted preload="auto" src="${edge.url}/v1/content/clip"></video>`)
  // page-side code as strings: it runs in the browser, where the DOM is (this project compiles without DOM types)
  const video = 'document.getElementById("v")'
  const state = () => page.evaluate(`({ t: ${video}.currentTime, err: ${video}.error ? ${video}.error.message : null, duration: ${video}.duration })`) as
    Promise<{ t: number; err: string | null; duration: number }>
  await page.evaluate(`${video}.play()`)
  await page.waitForFunction(`${video}.currentTime > 1`, undefined, { timeout: 20_000 })
  const first = await state()
  t.equal(first.err, null, 'no media error')
  t.ok(Math.abs(first.duration - 12) < 0.5, `duration ${first.duration} s`)
  for (const to of [8, 3]) {
    await page.evaluate(`${video}.currentTime = ${to}`)
    await page.waitForFunction(`!${video}.seeking && ${video}.currentTime > ${to + 0.5}`, undefined, { timeout: 20_000 })
    const s = await state()
    t.ok(s.t > to && s.err === null, `seeked to ${to} s and kept playing (at ${s.t.toFixed(2)} s)`)
  }
  t.same(errors, [], 'no page errors')
  const ranges = await metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'range' })
  // Chromium opens with `Range: bytes=0-`; whether a seek needs another request depends on what it has buffered
  t.ok(ranges >= 1, `the browser read with range requests (${ranges})`)
})
