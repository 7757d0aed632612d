import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { TestCluster, TOKEN } from './harness.js'
import { ingestLadder, makeLadder } from '../helpers/abr.js'
import { KeyRing, signToken } from '../../lib/security/tokens.js'

/**
 * ffmpeg as a player of an adaptive title through the router, with play
 * tokens required (router.requireToken): from the URLs /v1/play hands out
 * alone, with the token in the path, ffprobe finds every rung and the audio
 * through HLS and DASH, and ffmpeg decodes the top rung to its last frame.
 * The token as a query is accepted on the master too, and shown to be lost
 * on the first relative URI a player resolves — why the path form exists.
 */
const run = promisify(execFile)
const READ = 'edge-read-credential'

const c = await TestCluster.start(t, { overrides: { 'router.requireToken': true }, env: { REELCDN_ROUTER_READ_TOKEN: READ } })
const dir = join(c.dir, 'ladder')
await mkdir(dir, { recursive: true })
const files = await makeLadder(dir)
await ingestLadder(c.url, 'abr', files, TOKEN)

type Probe = { streams: { codec_type: string; height?: number; codec_name: string }[]; format: { duration: string } }
const probe = async (url: string) => JSON.parse((await run('/usr/bin/ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', url],
  { maxBuffer: 16 * 1024 ** 2, timeout: 60_000 })).stdout) as Probe
const play = async () => {
  const res = await c.get('/v1/play/abr')
  return JSON.parse(res.body.toString()) as { token: string; urls: { id: string; url: string; hls: string; dash: string }[] }
}

t.test('ffprobe reads every rung and the audio from the tokened master and MPD; ffmpeg decodes the top rung', async t => {
  const o = (await play()).urls.find(u => u.id === 'origin')!
  const hls = await probe(o.hls)
  t.same(hls.streams.filter(s => s.codec_type === 'video').map(s => s.height).sort(), [180, 90], 'both rungs through HLS')
  t.ok(hls.streams.some(s => s.codec_type === 'audio' && s.codec_name === 'aac'), 'the audio group')
  t.ok(Math.abs(Number(hls.format.duration) - 6) < 0.2, `duration ${hls.format.duration}`)
  const dash = await probe(o.dash)
  t.same(dash.streams.filter(s => s.codec_type === 'video').map(s => s.height).sort(), [180, 90], 'both rungs through DASH')
  t.ok(dash.streams.some(s => s.codec_type === 'audio'), 'audio through DASH')
  // ffmpeg picks the highest resolution of the master's variants, fetched as byte ranges of v180.mp4
  const { stderr } = await run('/usr/bin/ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-stats', '-i', o.hls, '-map', '0:v:0?', '-f', 'null', '-'],
    { maxBuffer: 16 * 1024 ** 2, timeout: 60_000 })
  t.match(stderr, /frame=\s*150\b/, '150 frames decoded through the master')
  const top = o.hls.replace(/master\.m3u8$/, 'v180.m3u8')
  const one = await run('/usr/bin/ffmpeg', ['-hide_banner', '-nostdin', '-v', 'error', '-stats', '-i', top, '-f', 'null', '-'], { maxBuffer: 16 * 1024 ** 2, timeout: 60_000 })
  t.match(one.stderr, /frame=\s*150\b/, '150 frames of the top rung from its media playlist')
})

t.test('with tokens required: every file takes the token in the path or the query, for its own title only', async t => {
  const { token } = await play()
  const other = signToken(KeyRing.parse('k1:test-token-key-one-0123456789'), { cid: 'another', exp: Math.floor(Date.now() / 1000) + 600 })
  for (const name of ['master.m3u8', 'v180.m3u8', 'manifest.mpd', 'v180.mp4', 'a64.mp4']) {
    t.equal((await c.get(`/v1/content/abr/t/${token}/${name}`)).status, 200, `path form: ${name}`)
    t.equal((await c.get(`/v1/content/abr/${name}?token=${token}`)).status, 200, `query form: ${name}`)
    const none = await c.get(`/v1/content/abr/${name}`)
    t.equal(none.status, 403, `no token: ${name}`)
    t.match(none.body.toString(), /missing token/)
    const wrong = await c.get(`/v1/content/abr/t/${other}/${name}`)
    t.equal(wrong.status, 403)
    t.match(wrong.body.toString(), /token is for another title/)
    t.match((await c.get(`/v1/content/abr/t/garbage/${name}`)).body.toString(), /malformed token/)
  }
  t.equal((await c.get('/v1/content/abr/r/v180/chunks/0', { authorization: `Bearer ${READ}` })).status, 200, 'edges fill with their credential')
  t.equal((await c.get('/v1/content/abr/r/v180/chunks/0')).status, 403)
  const range = await c.get(`/v1/content/abr/t/${token}/v180.mp4`, { range: 'bytes=0-99' })
  t.ok(range.body.equals(files.find(f => f.id === 'v180')!.bytes.subarray(0, 100)), 'ranges through the path form')
})

t.test('a token as a query is lost on the first relative URI a player resolves', async t => {
  const { token } = await play()
  const res = await run('/usr/bin/ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', `${c.url}/v1/content/abr/master.m3u8?token=${token}`],
    { maxBuffer: 16 * 1024 ** 2, timeout: 60_000 }).then(r => ({ ok: true, out: r.stdout + r.stderr }), (err: { stderr?: string }) => ({ ok: false, out: err.stderr ?? '' }))
  const found = res.ok ? (JSON.parse(res.out.slice(res.out.indexOf('{'))) as Probe).streams.filter(s => s.codec_type === 'video').length : 0
  t.equal(found, 0, 'no rung could be opened')
  // what a player resolves `v180.m3u8` against that master to (RFC 3986): the query is gone
  const resolved = new URL('v180.m3u8', `${c.url}/v1/content/abr/master.m3u8?token=${token}`)
  t.equal(resolved.search, '')
  t.equal((await c.get(resolved.pathname)).status, 403)
  t.equal((await c.get(new URL('v180.m3u8', `${c.url}/v1/content/abr/t/${token}/master.m3u8`).pathname)).status, 200, 'unlike the path form')
})
