import { Command, InvalidArgumentError, Option } from 'commander'
import { request } from 'undici'
import type { HlsPlayer } from '../client/abr/hls-player.js'
import { playSession, type SessionReport } from '../client/abr/play-session.js'
import type { PlayResponse } from '../client/player.js'
import { fail } from '../lib/cli.js'
import { configuredUrls, loadConfig } from '../lib/config/config.js'
import { UpstreamError } from '../lib/errors.js'
import { parseContentId } from '../lib/ids.js'
import { Progress } from './loadtest/progress.js'

/**
 * `reelcdn play ID`: one viewer of an adaptive title, from the command line.
 * It asks the router's `/v1/play/{id}` for the ranked URLs (each master
 * playlist carries the play token in its path), plays the title with the ABR
 * player (client/abr/play-session.ts: segments as byte ranges, the rung per
 * segment, server switches on sustained low quality, failover on errors),
 * optionally through a link of a given capacity and faster than real time,
 * checks every rendition chunk it fetched whole against the manifest, and
 * prints what the viewer got. The exit status is 1 when the playback failed
 * or a byte differed from the stored file.
 */
function positive(name: string) {
  return (v: string) => {
    const n = Number(v)
    if (v.trim() === '' || !Number.isFinite(n) || !(n > 0)) throw new InvalidArgumentError(`${name} must be a number above 0.`)
    return n
  }
}

/** An http:// or https:// URL, or an error naming the flag and what it was given. */
function httpUrl(name: string) {
  return (v: string) => {
    let u: URL | undefined
    try { u = new URL(v) } catch { /* named below */ }
    if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:'))
      throw new InvalidArgumentError(`${name} must be an http:// or https:// URL, such as http://127.0.0.1:7000; got ${JSON.stringify(v)}.`)
    return v
  }
}

/** The router's /v1/play answer for `id`, with `viewer` (a credential from `reelcdn token viewer`) when given. */
export async function fetchPlay(router: string, id: string, viewer?: string): Promise<PlayResponse> {
  const u = new URL(`/v1/play/${encodeURIComponent(id)}`, router)
  if (viewer) u.searchParams.set('viewer', viewer)
  const res = await request(u, { headersTimeout: 10_000, bodyTimeout: 10_000 })
  if (res.statusCode !== 200) throw new UpstreamError(`${u.pathname} answered ${res.statusCode}: ${(await res.body.text()).slice(0, 300)}`)
  const text = await res.body.text()
  let answer: Partial<PlayResponse> | undefined
  try { answer = JSON.parse(text) as Partial<PlayResponse> } catch { /* named below */ }
  if (!Array.isArray(answer?.urls)) throw new UpstreamError(`${u.pathname} answered 200 without a play answer's urls: ${text.slice(0, 200)}`)
  return answer as PlayResponse
}

const mbps = (bps: number) => `${(bps / 1e6).toFixed(2)} Mb/s`

/** The report as lines of text. */
export function formatPlay(r: SessionReport): string {
  const lines = [`${r.contentId}: played ${r.playedS.toFixed(1)} s of ${r.durationS.toFixed(1)} s${r.ended ? ' (to the end)' : ''}`,
    `server: ${new URL(r.firstServer).origin}${r.lastServer !== r.firstServer ? `, last ${new URL(r.lastServer).origin}` : ''}`,
    `start-up ${r.startupS === undefined ? 'never started' : `${(r.startupS * 1000).toFixed(0)} ms`}, ` +
      `stalls ${r.stalls} (${r.stallS.toFixed(2)} s), rebuffer ratio ${r.playedS > 0 ? (100 * r.stallS / r.playedS).toFixed(2) : '0.00'} %`,
    `average bitrate ${mbps(r.averageBps)}, rung switches ${r.rungSwitches}, abandoned downloads ${r.abandons}`,
    `server switches ${r.serverSwitches} (trial segments ${r.trials}), failovers ${r.failovers}`,
    'rung        bitrate   on screen   bytes']
  const shown = r.rungs.reduce((a, x) => a + x.seconds, 0)
  for (const x of r.rungs)
    lines.push(`${x.name.padEnd(8)} ${mbps(x.bandwidth).padStart(11)} ${`${x.seconds.toFixed(1)} s`.padStart(8)} ${shown > 0 ? `${(100 * x.seconds / shown).toFixed(0)}%`.padStart(4) : '   -'} ${String(x.bytes).padStart(10)}`)
  lines.push(`rungs per segment: ${r.rungsPlayed.map(i => r.rungs[i]?.name ?? i).join(' ')}`,
    `bytes received ${r.bytesReceived}, from the origin URL ${r.bytesFromOrigin}`)
  const v = r.verify
  if (v) lines.push(v.skipped ? `bytes not verified: ${v.skipped}`
    : `verified ${v.chunksOk} chunk(s), ${v.bytesVerified} bytes equal to the stored files; ${v.chunksBad} differed; ${v.bytesUnverified} bytes in chunks not fetched whole`)
  for (const e of v?.errors ?? []) lines.push(`  ${e}`)
  if (r.error) lines.push(`playback failed: ${r.error}`)
  return lines.join('\n') + '\n'
}

/** What the viewer sees now: position, state, the rung on screen, the buffer, the server. */
export function progressLine(p: HlsPlayer): string {
  const now = p.nowS()
  const state = p.state
  const rung = p.clock.rungAt(now)
  return `${p.clock.position(now).toFixed(1)}/${p.clock.durationS.toFixed(1)} s  ${state}  ${rung === undefined ? '-' : p.ladder[rung]!.name}  ` +
    `buffer ${p.clock.level(now).toFixed(1)} s  stalls ${p.clock.stalls.length}  from ${new URL(p.current.url).host}`
}

export function playCommand(): Command {
  return new Command('play')
    .summary('play an adaptive title as a player would, and report what the viewer got')
    .description('Ask the router\'s /v1/play for ID\'s URLs, play the title with the ABR player (HLS byte ranges, a rung per ' +
      'segment, server switches on sustained low quality, failover on errors) and print start-up, stalls, time and bytes per ' +
      'rung, switches and whether the bytes equal the stored files. Exits 1 if the playback failed or a byte differed.')
    .argument('<id>', 'the contentId of an adaptive title')
    .addOption(new Option('-r, --router <url>', 'router base URL (default: the router of --config, else of config/default.json: http://127.0.0.1:7000)')
      .argParser(httpUrl('--router')))
    .option('--config <file>', 'JSON config file whose router is the default --router, e.g. the <data-dir>/cluster.json `reelcdn cluster` writes (default: none)')
    .option('--viewer <credential>', 'a viewer credential (`reelcdn token viewer`) passed to /v1/play (default: none)')
    .addOption(new Option('--link <Mbps>', 'the viewer\'s link capacity in Mb/s: every read is paced to it (default: unpaced)').argParser(positive('--link')))
    .addOption(new Option('--speed <x>', 'play this many times faster than real time (the link is scaled alike)').default(1).argParser(positive('--speed')))
    .addOption(new Option('--watch <s>', 'seconds of media to watch, then leave (default: the whole title)').argParser(positive('--watch')))
    .addOption(new Option('--max-buffer <s>', 'the most media buffered ahead, in seconds').default(30, '30 s').argParser(positive('--max-buffer')))
    .option('--no-verify', 'do not check fetched bytes against the manifest\'s chunk digests')
    .option('--json', 'print the report as JSON')
    .action(async (id: string, o: { router?: string; config?: string; viewer?: string; link?: number; speed: number; watch?: number; maxBuffer: number; verify: boolean; json?: boolean }) => {
      try {
        parseContentId(id)
        const router = o.router ?? configuredUrls(loadConfig({ file: o.config, env: process.env })).router
        const play = await fetchPlay(router, id, o.viewer)
        // a progress line on stderr: redrawn on a terminal, every 5 s otherwise (stdout keeps only the report)
        const line = new Progress(process.stderr, 5000)
        let timer: NodeJS.Timeout | undefined
        const r = await playSession(play, { speed: o.speed, maxBufferS: o.maxBuffer, verify: o.verify,
          ...(o.link !== undefined ? { linkBps: o.link * 1e6 } : {}), ...(o.watch !== undefined ? { watchS: o.watch } : {}),
          onOpen: p => { timer = setInterval(() => line.show(progressLine(p)), 200) } }).finally(() => clearInterval(timer))
        line.show(`${id}: done`, true)
        process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatPlay(r))
        if (r.error || (r.verify?.chunksBad ?? 0) > 0) process.exitCode = 1
      } catch (err) {
        fail(err)
      }
    })
}
